"""bench/scale.py at small N: its datasets are real ledgers a `pipe run` accepts, the nightly no-op finds
its memos, and the fitted growth exponents of the no-op commands stay under 1.2 (the issue's bound on
what a small-N run may show; the bench itself reports the 1M figures). It builds the demo once, so it
is marked slow."""

from __future__ import annotations

import json

import pytest

from bench import scale

SIZES = (2_000, 20_000)


@pytest.mark.slow
def test_the_no_op_commands_grow_under_n_to_the_1_2_and_the_nightly_run_uses_its_memos(tmp_path):
    base = scale.build_base(tmp_path / "base")
    results: dict[str, list[tuple[int, float, float]]] = {}
    for count in SIZES:
        work = scale.grow(base, tmp_path / f"n{count}", count)
        for name, command in scale.commands(work).items():
            seconds, peak = scale.measure(command)
            results.setdefault(name, []).append((count, seconds, peak))
        root = work / "dataset"
        for stage, planned in (("prepared", count), ("lines", count * 5)):
            summary = json.loads((root / ".pipe" / "summaries" / f"{stage}.json").read_text())
            assert (summary["planned"], summary["processed"]) == (planned, 0), "the grown ledgers are whole: nothing new"
            assert (root / ".pipe" / "memos" / f"{stage}.json").is_file()
    for name, rows in results.items():
        sizes, seconds, peaks = zip(*rows)
        assert scale.fit_exponent(list(sizes), list(seconds)) < 1.2, (name, rows)
        assert scale.fit_exponent(list(sizes), list(peaks)) < 1.2, (name, rows)
