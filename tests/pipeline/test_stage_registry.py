"""The stage registry (pipeline/stages.py): every stage has every hook, and a stage added in one place
shows up in a job file, the dry run, the job's run and `pipe status` with no other edit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pytest
import typer

from manifests.layout import DatasetLayout
from manifests.ledger import Ledger
from manifests.schema import LedgerSchema
from pipeline import stages
from pipeline.cli import main
from pipeline.job.spec import read_job

HOOKS = ("value_checks", "complete_table", "job_argument", "default_argument", "check_params", "dependencies", "plan",
         "gains_upstream_work", "before_run", "after_run", "summary_path", "describe")
REPO = Path(__file__).resolve().parents[2]

STAMPS = LedgerSchema(stage="stamps", id_column="stamp", fields=(pa.field("stamp", pa.string(), nullable=False),))


def _stamp_parser():
    """`pipe stamp ROOT --count N`: a stage that records N stamps in its own ledger."""
    app = typer.Typer()

    @app.command()
    def stamp(root: Annotated[Path, typer.Argument()], count: Annotated[int, typer.Option(min=1)] = 2) -> None:
        Ledger(root, STAMPS).append([{"key": f"s{i}", "status": "ok", "stamp": f"s{i}"} for i in range(count)])

    @app.command()
    def other() -> None:  # two commands: Typer then keeps `stamp` as a named sub-command
        pass

    return typer.main.get_command(app).commands["stamp"]


@pytest.fixture
def stamp_stage():
    remove = stages.register(stages.Stage("stamp", "stamp", "stamps", ("prepare",), "unused", parser=_stamp_parser, schema=lambda: STAMPS),
                             after="prepare")
    yield
    remove()


def test_every_stage_has_every_hook_and_its_ledger_schema():
    for entry in stages.stages():
        for name in HOOKS:
            assert callable(entry.hook(name)), (entry.name, name)
        assert all(up in stages.stage_names()[: stages.stage_names().index(entry.name)] for up in entry.upstream), entry.name
        if entry.ledger:
            assert entry.ledger_schema().stage == entry.ledger
    assert stages.stage_names() == ("import", "crawl", "prepare", "extract", "shard", "train.ldm", "train.draft", "train.refine", "eval")
    assert [e.ledger for e in stages.ledger_stages()] == ["raw", "prepared", "lines", "shards"]


def test_a_registered_stage_is_in_the_job_the_dry_run_the_run_and_status(tmp_path, capsys, stamp_stage):
    job_file = tmp_path / "job.toml"
    job_file.write_text('dataset = "data"\n[stamp]\ncount = 3\n')
    job = read_job(job_file)
    assert [s.name for s in job.stages] == ["stamp"] and job.stages[0].params == {"root": tmp_path / "data", "count": 3}
    (tmp_path / "data").mkdir()
    capsys.readouterr()
    assert main(["run", str(job_file), "--dry-run"]) == 0
    plan = "".join(capsys.readouterr())
    assert "│ stamp " in plan and "pipe stamp" in plan
    assert main(["run", str(job_file)]) == 0
    record = json.loads(next(DatasetLayout(tmp_path / "data").jobs.glob("*/summary.json")).read_text())
    assert [(s["name"], s["status"]) for s in record["stages"]] == [("stamp", "done")]
    assert Ledger(tmp_path / "data", STAMPS).ids() == {"s0", "s1", "s2"}
    capsys.readouterr()
    assert main(["status", str(tmp_path / "data")]) == 0
    out = "".join(capsys.readouterr())
    assert "stamps  (stamps.parquet, stamp is the input id)" in out and "│ ok " in out and " 3 " in out


def test_a_registered_stage_checks_its_keys_like_the_built_in_ones(tmp_path, capsys, stamp_stage):
    job_file = tmp_path / "job.toml"
    job_file.write_text('dataset = "data"\n[stamp]\ncolour = "red"\n')
    assert main(["run", str(job_file)]) == 2
    assert "[stamp] colour: `pipe stamp` has no option --colour" in capsys.readouterr().err


def test_the_job_machinery_imports_no_cli_and_no_torch():
    code = ("import sys, pipeline.job.run, pipeline.job.plan, pipeline.stages; "
            "print(sorted(m for m in sys.modules if m in ('torch', 'typer', 'click', 'pipeline.cli') or m.startswith('pipeline.commands')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}).stdout
    assert out.strip() == "[]"


def test_a_prepare_job_is_read_and_planned_without_torch(tmp_path):
    """Parsing a prepare table (through the registry's parser) and planning it imports no torch."""
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    job_file = tmp_path / "job.toml"
    job_file.write_text('dataset = "data"\n[prepare]\nsource = "images"\n')
    code = ("import sys; from pipeline.job.spec import read_job; from pipeline.job.plan import stage_work; "
            f"job = read_job(__import__('pathlib').Path({str(job_file)!r})); "
            "print(stage_work(job, job.stages[0])); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.stdout.splitlines() == ["(True, '1 of 1 inputs not in the ledger')", "False"], result.stdout + result.stderr
