"""`pipe verify ROOT`: read back every file pipe wrote in a dataset folder and say which are damaged.

What is checked, per kind of file:

- ledgers (ROOT/<stage>.parquet and the parts of unfinished runs): their page checksums and the digest
  of their bytes; ledgers an older pipe wrote have no digest and are read for readability only;
- options records (ROOT/.pipe/options/): their digests; generation tokens; shards/_config.json parses;
- outputs the ledgers name: raw/ originals are content-addressed (their key is their SHA-256), so they
  are hashed again; prepared/ and lines/ images are not digested in their ledgers, so only their
  existence is checked (the shards made from them carry digests of their own);
- shards: through `pipe shard --verify`'s own check (tar digests, sidecars, done-markers);
- checkpoints (ROOT/runs/*/checkpoints/*.pt): read back as `pipe train --resume` reads them;
- job state (ROOT/.pipe/jobs/), run summaries (ROOT/.pipe/summaries/, ROOT/jobs/*/summary.json) and
  reports (ROOT/reports/*/report.json): they parse, and their digests hold where they have one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.markup import escape
from rich.table import Table

from manifests.checksummed import forget_verified_files
from manifests.layout import REPORT_JSON_FILE, STATE_DIR, DatasetLayout
from manifests.ledger import Ledger, LedgerError, check_ledger_file, read_ledger_file
from manifests.schema import IMPORTS, LEDGERS, RAW, LedgerSchema
from manifests.shards import STATS_SUFFIX
from pipeline.console import console
from pipeline.errors import PipeError
from pipeline.recorded_options import DamagedRecord, parse_digested_json

NO_DIGEST = "no digest (written by an older pipe)"
# One generation token: 32 hex digits and a newline (pipeline.session).
_GENERATION = re.compile(r"[0-9a-f]{32}\n?")


@dataclass
class KindResult:
    """What was found for one kind of file: counts, and each damaged file with why."""

    kind: str
    what: str  # what was checked, for the table
    ok: int = 0
    unverified: int = 0  # readable, but without a digest to check
    damaged: list[tuple[Path, str]] = field(default_factory=list)

    def passed(self, has_digest: bool = True) -> None:
        self.ok += 1
        self.unverified += 0 if has_digest else 1


@dataclass
class VerifyResult:
    kinds: list[KindResult]

    @property
    def damaged(self) -> list[tuple[Path, str]]:
        return [entry for kind in self.kinds for entry in kind.damaged]


# --------------------------------------------------------------------------------------------- ledgers
def _ledger_files(layout: DatasetLayout) -> Iterator[tuple[LedgerSchema, Path]]:
    for schema in (IMPORTS, *LEDGERS):
        ledger = Ledger(layout.root, schema)
        for path in ([ledger.path] if ledger.path.is_file() else []) + ledger.pending_parts():
            yield schema, path


def check_ledgers(layout: DatasetLayout) -> tuple[KindResult, dict[str, object]]:
    """Every ledger file; also the readable ledgers' tables, for the output check."""
    result = KindResult("ledgers", "page checksums and file digest of ROOT/*.parquet and their parts")
    readable: dict[str, object] = {}
    broken: set[str] = set()
    for schema, path in _ledger_files(layout):
        try:
            has_digest = check_ledger_file(path, schema.stage).has_digest
            read_ledger_file(path, schema)
        except LedgerError as exc:
            result.damaged.append((path, _why(str(exc), path)))
            broken.add(schema.stage)
            continue
        result.passed(has_digest)
    for schema in (IMPORTS, *LEDGERS):
        if schema.stage not in broken and Ledger(layout.root, schema).exists():
            readable[schema.stage] = Ledger(layout.root, schema).read()
    return result, readable


def _why(message: str, path: Path) -> str:
    """The reason part of a library's message that already names the file."""
    return message.split(f"{path}: ", 1)[-1] if str(path) in message else message


# --------------------------------------------------------------------------------------------- records
def _check_json_record(path: Path, result: KindResult, validate: Callable[[dict], str | None] | None = None) -> None:
    try:
        values, has_digest = parse_digested_json(path.read_bytes().decode())
    except (DamagedRecord, UnicodeDecodeError, OSError) as exc:
        result.damaged.append((path, f"damaged ({exc})"))
        return
    problem = validate(values) if validate is not None else None
    if problem:
        result.damaged.append((path, f"damaged ({problem})"))
        return
    result.passed(has_digest)


def check_options(layout: DatasetLayout) -> KindResult:
    result = KindResult("options", "digests of ROOT/.pipe/options/*.json, generation tokens, shards/_config.json")
    folder = layout.root / STATE_DIR / "options"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        _check_json_record(path, result)
    for path in sorted(folder.glob("*.generation")) if folder.is_dir() else []:
        try:
            token_ok = _GENERATION.fullmatch(path.read_bytes().decode()) is not None
        except UnicodeDecodeError:
            token_ok = False
        if token_ok:
            result.passed()
        else:
            result.damaged.append((path, "damaged (not a generation token: 32 hex digits)"))
    if layout.shard_config.is_file():
        _check_json_record(layout.shard_config, result)
    return result


def check_job_records(layout: DatasetLayout) -> tuple[KindResult, KindResult]:
    """(job state, summaries): what `pipe run` and the stages wrote about their runs."""
    from pipeline.job.state import state_problem

    states = KindResult("job state", "ROOT/.pipe/jobs/*.json: digest, and the values `pipe run` needs")
    folder = layout.job_state("-").parent
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        kind = path.stem.split(".")[0]
        _check_json_record(path, states, lambda values, kind=kind: state_problem(values, kind))
    summaries = KindResult("summaries", "ROOT/.pipe/summaries/*.json (digest, run name and time), ROOT/jobs/*/summary.json: they parse (digest where they have one)")
    for path in sorted(layout.summary("-").parent.glob("*.json")):
        _check_json_record(path, summaries, _session_summary_problem)
    for path in sorted(layout.jobs.glob("*/summary.json")):
        _check_json_record(path, summaries)
    return states, summaries


def _session_summary_problem(values: dict) -> str | None:
    """A stage session's summary says which run it is and when it finished (`StageSession.write_summary`)."""
    missing = [field for field in ("name", "finished") if not isinstance(values.get(field), str)]
    return f"not a stage summary: no {' or '.join(missing)}" if missing else None


def check_reports(layout: DatasetLayout) -> KindResult:
    result = KindResult("reports", "ROOT/reports/*/report.json: parses as a report (an object with its settings; digest where it has one)")
    for path in sorted(layout.reports.glob(f"*/{REPORT_JSON_FILE}")):
        _check_json_record(path, result, lambda report: None if isinstance(report.get("settings"), dict) else "not a report: no settings")
    return result


# --------------------------------------------------------------------------------------------- files
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _output_checks(layout: DatasetLayout, tables: dict[str, object]) -> list[tuple[Path, str | None]]:
    """(file, SHA-256 it must have or None for existence only) of every ok row's output."""
    checks: list[tuple[Path, str | None]] = []
    for stage, columns in (("raw", ("path",)), ("prepared", ("path",)), ("lines", ("path",)), ("imports", ("path", "line_path"))):
        table = tables.get(stage)
        if table is None:
            continue
        rows = table.select(["key", "status", *columns]).to_pylist()  # type: ignore[attr-defined]
        for row in rows:
            if row["status"] != "ok":
                continue
            for column in columns:
                if row[column]:
                    checks.append((layout.root / row[column], row["key"] if stage == RAW.stage else None))
    return checks


def check_files(layout: DatasetLayout, tables: dict[str, object], progress: Progress) -> tuple[KindResult, KindResult]:
    """(outputs, checkpoints): the files that take time to read, under one progress bar."""
    outputs = KindResult("outputs", "raw/ rehashed against its SHA-256 keys; prepared/, lines/ exist (their ledgers record no digest)")
    checkpoints = KindResult("checkpoints", "ROOT/runs/*/checkpoints/*.pt read back as `pipe train --resume` reads them")
    file_checks = _output_checks(layout, tables)
    checkpoint_paths = sorted(layout.runs.glob("*/checkpoints/*.pt"))
    task = progress.add_task("files", total=len(file_checks) + len(checkpoint_paths))
    for path, digest in file_checks:
        if not path.is_file():
            outputs.damaged.append((path, "missing (its ledger row is ok)"))
        elif digest is not None and _sha256(path) != digest:
            outputs.damaged.append((path, "damaged (its SHA-256 is not its key)"))
        else:
            outputs.passed(has_digest=digest is not None)
        progress.advance(task)
    if checkpoint_paths:
        from train.checkpoint import read_checkpoint  # torch only when there are checkpoints

        for path in checkpoint_paths:
            try:
                read_checkpoint(path)
            except (ValueError, OSError) as exc:
                checkpoints.damaged.append((path, f"damaged ({_why(str(exc), path)})"))
            else:
                checkpoints.passed(has_digest=False)
            progress.advance(task)
    return outputs, checkpoints


def check_shards(layout: DatasetLayout) -> KindResult:
    """Through `pipe shard --verify`'s check; each problem it names is one damaged shard file."""
    from pipeline.shard.verify import verify_shard_set

    result = KindResult("shards", "ROOT/shards: tar digests, sidecars and done-markers (as `pipe shard --verify`)")
    if not layout.shards.is_dir():
        return result
    try:
        report = verify_shard_set(layout.root)
    except Exception as exc:  # noqa: BLE001 - a damaged file the shard check could not read at all
        why = f"damaged ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        result.damaged = _unreadable_shard_files(layout.shards) or [(layout.shards, why)]
        return result
    damaged: dict[str, list[str]] = {}
    for finding in report.findings:
        damaged.setdefault(finding.path, []).append(finding.problem)
    result.ok = report.shards - len(damaged)
    result.damaged = [(layout.root / name, "; ".join(whys)) for name, whys in damaged.items()]
    return result


def _unreadable_shard_files(shards: Path) -> list[tuple[Path, str]]:
    """Which done-markers or sidecars do not even read, to name them when the shard check stopped at one."""
    import pyarrow.parquet as pq

    found = []
    for path in sorted(shards.glob("*/*")):
        try:
            if path.name.endswith(STATS_SUFFIX):
                json.loads(path.read_bytes())
            elif path.suffix == ".parquet":
                pq.read_table(path, page_checksum_verification=True).to_pylist()
        except Exception as exc:  # noqa: BLE001 - json's, unicode's and pyarrow's errors alike
            found.append((path, f"damaged (unreadable: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"))
    return found


# --------------------------------------------------------------------------------------------- the command
def verify_dataset(root: Path) -> VerifyResult:
    if root.is_file():
        raise PipeError(f"{root} is a file, not a dataset folder: give the folder that holds the ledgers")
    if not root.is_dir():
        raise PipeError(f"dataset folder not found: {root}")
    layout = DatasetLayout(root)
    forget_verified_files()  # every byte hashed now, whatever this process read before
    ledgers, tables = check_ledgers(layout)
    options = check_options(layout)
    states, summaries = check_job_records(layout)
    progress = Progress(TextColumn("verify {task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console, transient=True)
    with progress:
        outputs, checkpoints = check_files(layout, tables, progress)
        shards = check_shards(layout)
    return VerifyResult([ledgers, options, outputs, shards, checkpoints, states, summaries, check_reports(layout)])


def result_table(result: VerifyResult) -> Table:
    table = Table(title="pipe verify", title_justify="left")
    for column in ("kind", "ok", "damaged", "what was checked"):
        table.add_column(column, justify="right" if column in ("ok", "damaged") else "left")
    for kind in result.kinds:
        unverified = {"outputs": "existence only", "ledgers": "without digest", "options": "without digest", "job state": "without digest"}.get(kind.kind)
        ok = f"{kind.ok:,}" + (f" ({kind.unverified:,} {unverified})" if kind.unverified and unverified else "")
        damaged = f"[red]{len(kind.damaged):,}[/]" if kind.damaged else "0"
        table.add_row(kind.kind, ok, damaged, kind.what)
    return table


def show_verify(root: Path) -> int:
    """Print each damaged file as one line, then the table; returns how many files are damaged."""
    result = verify_dataset(root)
    for path, why in result.damaged:
        console.print(f"[red]damaged:[/] {escape(str(path))}: {escape(why)}", soft_wrap=True, highlight=False)
    console.print(result_table(result))
    ledgers = result.kinds[0]
    if ledgers.unverified:
        console.print(f"[yellow]note:[/] {ledgers.unverified} ledger file(s) have {NO_DIGEST}: run their stage to rewrite them with one", soft_wrap=True)
    return len(result.damaged)
