"""`pipe shard`: every ok prepared image becomes one WebDataset sample (colour, line, hint, draft, JSON).

Samples are synthesized in a spawn process pool, one per task, and come back in key order; the main
process packs them into shards/<split>/NNNNN.tar until a shard reaches its sample or byte limit. Order
and limits are fixed by the keys and the seed alone, so two runs give byte-identical shards whatever
the number of workers. A killed run loses only its unfinished shards: on the next run, shards without
a done-marker are deleted and their samples packed again, into the same shard numbers.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from manifests.atomic import write_bytes_atomic
from manifests.layout import DatasetLayout
from manifests.ledger import Ledger
from manifests.schema import SHARDS, STATUS_FAILED, STATUS_OK
from manifests.shards import ShardFileError, finished_shards, read_sidecar, shard_paths, sidecar_keys
from pipeline.console import console
from pipeline.errors import PipeError
from pipeline.executors import ExecutorSpec, spec_of, start_executor
from pipeline.recorded_options import RecordedOptions
from pipeline.importing.splits import kept_splits
from pipeline.session import RunReport, StageSession
from pipeline.shard.config import OPTION_FLAGS, SPLITS, ShardConfig
from pipeline.shard.done_marker import HISTOGRAM_DIGEST, read_done_marker
from pipeline.shard.plan import ShardJob, plan_shard, val_share_for
from pipeline.shard.synthesize import SampleOutcome, SynthInputs, init_synth_worker, read_rgb, synthesize_in_worker
from pipeline.shard.writer import ShardSummary, ShardWriter
from synth.common import color_histogram

log = logging.getLogger(__name__)

# FID and KID need at least this many samples (a covariance; pairs of distinct samples).
VAL_MINIMUM = 2


@dataclass
class ShardState:
    """What earlier runs finished in one split folder."""

    next_index: int = 0
    done_keys: set[str] = field(default_factory=set)
    summaries: list[ShardSummary] = field(default_factory=list)
    histogram_digests: set[str] = field(default_factory=set)  # the SHA-256 of the histogram its shards were drawn with


def shards_root(root: Path) -> Path:
    return DatasetLayout(root).shards


def scan_split(folder: Path, split: str) -> ShardState:
    """Finished shards of `folder`; unfinished ones (no done-marker) are deleted."""
    state = ShardState()
    if not folder.exists():
        return state
    finished = finished_shards(folder)
    for path in sorted(folder.iterdir()):
        stem = path.name.split(".")[0].split("_")[0]
        if path.suffix in (".tar", ".parquet") and (not stem.isdigit() or int(stem) not in finished):
            log.info("removing %s, left unfinished by an interrupted run", path.name)
            path.unlink()
    for index in finished:
        _, sidecar, stats = shard_paths(folder, index)
        try:
            keys = tuple(sidecar_keys(sidecar))
            info = read_done_marker(stats)
        except (ShardFileError, FileNotFoundError) as exc:
            raise PipeError(f"{exc}; `pipe shard {folder.parent.parent} --verify` lists every damaged file, --redo builds the shards again") from None
        state.summaries.append(ShardSummary(split, index, info["count"], info["bytes"], keys))
        if isinstance(info.get(HISTOGRAM_DIGEST), str):
            state.histogram_digests.add(info[HISTOGRAM_DIGEST])
        state.done_keys.update(keys)
    state.next_index = finished[-1] + 1 if finished else 0
    return state


def dataset_histogram(jobs: list[ShardJob], config: ShardConfig, session: StageSession, vouched: set[str]) -> tuple[np.ndarray, str]:
    """The 512-bin colour histogram of the first `histogram_images` train images and the SHA-256 of its
    file. The file is reused only when the finished shards' done-markers record its digest (they were
    drawn with it); a file no shard vouches for is counted again (the same images give the same
    counts), and one that differs from what the shards record is damaged."""
    path = DatasetLayout(config.root).shard_histogram
    if path.exists() and vouched:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest not in vouched:
            raise PipeError(f"{path} differs from the histogram the finished shards were drawn with (damaged); --redo builds the shards again")
        return np.load(io.BytesIO(data), allow_pickle=False), digest
    counts = np.zeros(512, dtype=np.int64)
    chosen = [job for job in jobs if job.split == "train"][: config.histogram_images] or jobs[: config.histogram_images]
    with session.progress("dataset colour histogram", total=len(chosen)) as bar:
        for job in chosen:
            try:
                rgb = read_rgb(config.root, job.color_path)[1]
            except Exception:  # noqa: BLE001 - a bad image is reported by the sample itself
                bar.advance()
                continue
            image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
            counts += color_histogram(image)[0].numpy()
            bar.advance()
    if counts.sum() == 0:
        raise PipeError("no readable train image to count the dataset colour histogram from")
    buffer = io.BytesIO()
    np.save(buffer, counts)
    write_bytes_atomic(path, buffer.getvalue())
    return counts, hashlib.sha256(buffer.getvalue()).hexdigest()


def failed_outcome(job: ShardJob, reason: str, detail: str) -> list[SampleOutcome]:
    """What a job that raised or killed its worker becomes (the executor's failure callback)."""
    return [SampleOutcome(job, reason=reason, detail=detail)]


def ordered_outcomes(jobs: list[ShardJob], inputs: SynthInputs, spec: ExecutorSpec) -> Iterator[SampleOutcome]:
    """Synthesize `jobs` on the executor, one job per unit, yielding outcomes in job order."""
    executor = start_executor(
        spec, synthesize_in_worker, failed_outcome, window=4 * max(1, spec.workers), ordered=True, initializer=init_synth_worker, initargs=(inputs,)
    )
    with executor:
        for job in jobs:
            executor.submit([job])
            for unit in executor.finished():
                yield from unit.flat()
        for unit in executor.drain():
            yield from unit.flat()


def ok_rows(summary_rows: list[dict], config: ShardConfig) -> list[dict]:
    """Ledger rows for a finished shard's sidecar rows."""
    return [
        {
            "key": r["key"],
            "status": STATUS_OK,
            "split": r["split"],
            "shard": r["shard"],
            "line_source": r["line_source"],
            "hint": r["hint"],
            "artifacts": r["artifacts"],
            "seed": config.seed,
            "bytes": sum(r["member_bytes"]),
        }
        for r in summary_rows
    ]


def failed_ledger_row(outcome: SampleOutcome, config: ShardConfig) -> dict:
    return {
        "key": outcome.job.key,
        "status": STATUS_FAILED,
        "reason": outcome.reason,
        "detail": outcome.detail,
        "split": outcome.job.split,
        "seed": config.seed,
    }


def repair_ledger(ledger: Ledger, folder: Path, states: dict[str, ShardState], config: ShardConfig) -> None:
    """Finished shards whose ok rows did not reach the ledger (killed right after the done-marker)."""
    recorded = set()
    if ledger.exists():
        table = ledger.read(columns=["status", "shard"])
        recorded = {k for k, s, sh in zip(table["key"].to_pylist(), table["status"].to_pylist(), table["shard"].to_pylist()) if s == STATUS_OK and sh}
    missing: list[dict] = []
    for split, state in states.items():
        for summary in state.summaries:
            if not set(summary.keys) <= recorded:
                sidecar = shard_paths(folder / split, summary.index)[1]
                missing += ok_rows(read_sidecar(sidecar).to_pylist(), config)
    if missing:
        ledger.append(missing)


def warn_small_val(jobs: list[ShardJob], config: ShardConfig) -> None:
    """`pipe eval` needs 2 val samples for FID/KID: say so, and which --val gives them, before packing."""
    count = sum(job.split == "val" for job in jobs)
    if config.val_fraction > 0 and count < VAL_MINIMUM:
        kept = kept_splits(config.root)  # imported pairs keep their source's split whatever --val says
        hashed = [job.key for job in jobs if job.key not in kept]
        enough = val_share_for(hashed, VAL_MINIMUM - sum(split == "val" for split in kept.values()))
        hint = f"--val {enough:.2f} gives at least {VAL_MINIMUM}" if enough is not None else f"it needs at least {VAL_MINIMUM} prepared images"
        console.print(
            f"[yellow]warning:[/] the val split will hold {count} of {len(jobs)} samples (--val {config.val_fraction}): "
            f"pipe eval needs at least {VAL_MINIMUM} for FID/KID; a larger --val gives more ({hint})",
            soft_wrap=True,
        )


def run_shard(config: ShardConfig, redo: bool = False, note: str | None = None) -> tuple[RunReport, dict[str, ShardState]]:
    """Pack what is not packed yet; `note` (which recorded options a resume took) is printed once the options are accepted."""
    folder = shards_root(config.root)
    jobs = plan_shard(config)  # before anything is written: a wrong ROOT leaves no trace
    options = RecordedOptions(config.fingerprint(), path=DatasetLayout(config.root).shard_config, labels=OPTION_FLAGS)
    with StageSession(config.root, SHARDS.stage, SHARDS, save_every=config.flush_seconds, options=options, redo=redo, upstream=("prepared", "lines")) as session:
        if note:
            console.print(note, soft_wrap=True)
        warn_small_val(jobs, config)  # only once the session accepted the options: a refused run warns of nothing
        session.saved_note = "finished shards are kept"
        ledger = session.ledger
        if redo:
            shutil.rmtree(folder, ignore_errors=True)
            ledger.delete()
        folder.mkdir(parents=True, exist_ok=True)
        session.save_options()  # before the first shard: a killed run's shards must be checked on resume
        states = {split: scan_split(folder / split, split) for split in SPLITS}
        repair_ledger(ledger, folder, states, config)
        done = set().union(*(s.done_keys for s in states.values()))
        pending = [job for job in jobs if job.key not in done]
        donors = {split: {job.key: job.color_path for job in jobs if job.split == split} for split in SPLITS}
        histogram, stamp = None, {}
        if "histogram" in config.hints and pending:
            histogram, digest = dataset_histogram(jobs, config, session, set().union(*(s.histogram_digests for s in states.values())))
            stamp = {HISTOGRAM_DIGEST: digest}  # each done-marker vouches for the histogram its shard was drawn with
        inputs = SynthInputs(config, donors, histogram)
        if pending:
            _pack(pending, inputs, states, session, config, stamp)
    return session.report(len(jobs), {job.key for job in pending}), states


# The tar stream buffers one record before it reaches the file, and the archive ends with padding
# up to a whole record: room for both keeps a closed shard within the byte limit.
TAR_SLACK = 2 * tarfile.RECORDSIZE


def tar_cost(outcome: SampleOutcome) -> int:
    """Upper bound of what adding a sample makes the tar grow by: a header and padding per member."""
    return outcome.nbytes + 1024 * len(outcome.members or {}) + TAR_SLACK


def _pack(pending: list[ShardJob], inputs: SynthInputs, states: dict[str, ShardState], session: StageSession, config: ShardConfig, stamp: dict) -> None:
    folder = shards_root(config.root)
    writers: dict[str, ShardWriter] = {}

    def finish(split: str) -> None:
        writer = writers[split]
        rows = writer.rows
        summary = writer.close()
        del writers[split]  # only once published: a close that fails is abandoned below
        state = states[split]
        state.summaries.append(summary)
        state.next_index = summary.index + 1
        session.record(ok_rows(rows, config))

    try:
        with session.progress(f"shard ({','.join(config.hints)} hints)", total=len(pending)) as bar:
            for outcome in ordered_outcomes(pending, inputs, spec_of(config)):
                split = outcome.job.split
                if outcome.members is None:
                    session.record([failed_ledger_row(outcome, config)])
                    bar.advance()
                    continue
                writer = writers.get(split)
                if writer is not None and writer.count and writer.size + tar_cost(outcome) > config.max_bytes:
                    finish(split)
                    writer = None
                if writer is None:
                    writer = writers[split] = ShardWriter(folder / split, split, states[split].next_index, session.tmp_dir / split, config.seed, config.fingerprint(), stamp)
                writer.add(outcome)
                if writer.count >= config.max_samples:
                    finish(split)
                bar.advance()
            for split in list(writers):
                finish(split)
    except BaseException as error:  # Ctrl-C, a full disk (the OSError names its file), a bug
        for writer in writers.values():
            writer.abandon(error)  # an unfinished shard leaves nothing behind: the rerun packs it again
        raise
