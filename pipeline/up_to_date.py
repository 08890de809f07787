"""A stage's memo of its last finished run, so that a run with nothing new need not plan at all.

A stage run that finishes (every planned input has its rows) records what it was made from: the digest
each input ledger file and its own ledger file carry in their footers (see manifests.checksummed), its
options, and its counts. The next run reads those digests again, from the footers, and when every
one is the same, nothing can be new: it reports the recorded counts without reading a row. Each file
is still hashed against its digest (in blocks, about a second per GB), so bit rot is seen the night it
happens. Anything the digests cannot tell turns the memo off for that run, and the stage plans as
usual: a ledger with parts waiting to be folded, a file without a digest or a damaged one (the plan's
read then names the damage), a folder of files as the source, a `--redo`, a damaged memo.

A ledger file is only ever replaced (written beside it and renamed), and its digest is a function of
its bytes, so an unchanged digest means an unchanged ledger. The memo is a digested record (a flipped
bit in it is noticed and the stage plans).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from manifests.atomic import write_bytes_atomic
from manifests.checksummed import verified_digest
from manifests.layout import STATE_DIR
from manifests.ledger import Ledger
from pipeline.recorded_options import DamagedRecord, json_digest, options_json, read_digested_json

MEMO_FOLDER = "memos"


def ledger_digest(ledger: Ledger) -> str | None:
    """The digest a ledger's main file records, "absent" when it has none yet, or None when a footer
    cannot tell (parts not yet folded, a file from before digests, an unreadable file)."""
    if ledger.pending_parts():
        return None
    if not ledger.path.exists():
        return "absent"
    return file_digest(ledger.path)


def file_digest(path: Path) -> str | None:
    """The digest a checksummed Parquet file records, once its bytes are checked against it (in
    blocks, once per command: bit rot in a ledger a nightly job depends on does not pass unseen
    because nothing was new); None for a file without one, or a damaged one (the stage's own read
    then names the damage)."""
    try:
        return verified_digest(path)
    except Exception:  # noqa: BLE001 - a digest mismatch, or one of pyarrow's several errors for damaged files
        return None


def fingerprint(inputs: dict[str, str | None], own: Ledger, options: dict[str, Any]) -> str | None:
    """One digest of what a run is made from: its inputs' digests (name -> digest), its own ledger's
    and its options; None when any of them cannot be told from a footer."""
    made_from = {**inputs, "own ledger": ledger_digest(own)}
    if any(value is None for value in made_from.values()):
        return None
    return json_digest({"made from": made_from, "options": json_digest(options)})


def memo_path(root: Path, stage: str) -> Path:
    return Path(root) / STATE_DIR / MEMO_FOLDER / f"{stage}.json"


def recorded_summary(root: Path, stage: str, made_from: str | None) -> dict[str, Any] | None:
    """The summary of the finished run whose fingerprint was `made_from`, or None."""
    path = memo_path(root, stage)
    if made_from is None or not path.is_file():
        return None
    try:
        memo = read_digested_json(path)
    except (DamagedRecord, OSError):
        return None
    if memo.get("made_from") != made_from or not isinstance(memo.get("summary"), dict):
        return None
    return memo["summary"]


def remember(root: Path, stage: str, made_from: str | None, summary: dict[str, Any]) -> None:
    """Record a finished run (or forget the memo, when what it was made from cannot be told)."""
    path = memo_path(root, stage)
    if made_from is None:
        path.unlink(missing_ok=True)
        return
    write_bytes_atomic(path, options_json({"made_from": made_from, "summary": summary}).encode())
