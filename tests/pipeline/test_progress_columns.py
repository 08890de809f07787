"""Progress columns agree with each other: one rate (count / time since the bar started) gives both the
rate shown and the ETA; in logs the progress is a plain line, with no log level and no padding."""

from __future__ import annotations

import logging

from pipeline.console import make_progress, plain_progress_line, task_eta, task_rate
from pipeline.session import ProgressTracker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _task_after(done: int, total: int, seconds: float):  # noqa: ANN202
    clock = Clock()
    progress = make_progress(get_time=clock)
    since = clock.now  # the session started before the bar (start-up): all columns count from it
    clock.now += seconds / 2
    task_id = progress.add_task("prepare", total=total, since=since)
    clock.now += seconds / 2
    progress.update(task_id, advance=done)
    return progress, progress.tasks[0]


def test_rate_and_eta_come_from_one_rate():
    _, task = _task_after(40, 300, 20.0)
    assert task_rate(task) == 2.0
    assert task_eta(task) == 130.0  # (300 - 40) / 2.0 it/s, not Rich's sampled speed
    assert plain_progress_line(task) == "prepare: 40/300 done, 2.0 it/s, elapsed 0:00:20, eta 0:02:10"


def test_rendered_columns_agree(capsys):
    progress, task = _task_after(40, 300, 20.0)
    line = " ".join(str(column.render(task)) for column in progress.columns[3:])
    assert line == "2.0 it/s 0:00:20 eta 0:02:10"


def test_plain_progress_in_logs_has_no_level_and_no_padding(capsys, monkeypatch, caplog):
    import pipeline.session as session

    progress, _ = _task_after(40, 300, 20.0)
    monkeypatch.setattr(session, "PLAIN_PROGRESS_SECONDS", -1.0)
    tracker = ProgressTracker(progress, progress.tasks[0].id, "prepare", 300)
    with caplog.at_level(logging.DEBUG):
        tracker.advance(0)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("prepare:")]
    assert len(lines) == 1 and lines[0] == lines[0].rstrip() and "WARNING" not in lines[0]
    assert lines[0].startswith("prepare: 40/300 done")
    assert not [record for record in caplog.records if "done" in record.getMessage()]
