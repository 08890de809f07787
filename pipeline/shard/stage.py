"""`pipe shard`: every ok prepared image becomes one WebDataset sample (colour, line, hint, draft, JSON).

Samples are synthesized in a spawn process pool, one per task, and come back in key order; the main
process packs them into shards/<split>/NNNNN.tar until a shard reaches its sample or byte limit. Order
and limits are fixed by the keys and the seed alone, so two runs give byte-identical shards whatever
the number of workers. A killed run loses only its unfinished shards: on the next run, shards without
a done-marker are deleted and their samples packed again, into the same shard numbers.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import shutil
import tarfile
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from manifests.atomic import write_bytes_atomic
from manifests.layout import DatasetLayout
from manifests.ledger import Ledger
from manifests.schema import SHARDS, STATUS_FAILED, STATUS_OK
from pipeline.console import make_progress
from pipeline.errors import PipeError
from pipeline.runner import REASON_WORKER_CRASHED, LedgerBuffer, RunnerConfig, RunReport, stage_lock, summarize_run
from pipeline.shard.config import SPLITS, ShardConfig
from pipeline.shard.plan import ShardJob, plan_shard
from pipeline.shard.synthesize import SampleOutcome, SynthInputs, init_synth_worker, read_rgb, synthesize, synthesize_in_worker
from pipeline.shard.writer import STATS_SUFFIX, ShardSummary, ShardWriter, shard_paths
from synth.common import color_histogram

log = logging.getLogger(__name__)

SHARDS_DIR = "shards"
CONFIG_FILE = "_config.json"
HISTOGRAM_FILE = "_histogram.npy"


@dataclass
class ShardState:
    """What earlier runs finished in one split folder."""

    next_index: int = 0
    done_keys: set[str] = field(default_factory=set)
    summaries: list[ShardSummary] = field(default_factory=list)


def shards_root(root: Path) -> Path:
    return root / SHARDS_DIR


def scan_split(folder: Path, split: str) -> ShardState:
    """Finished shards of `folder`; unfinished ones (no done-marker) are deleted."""
    state = ShardState()
    if not folder.exists():
        return state
    finished = sorted(int(p.name[: -len(STATS_SUFFIX)]) for p in folder.glob(f"*{STATS_SUFFIX}"))
    for path in sorted(folder.iterdir()):
        stem = path.name.split(".")[0].split("_")[0]
        if path.suffix in (".tar", ".parquet") and (not stem.isdigit() or int(stem) not in finished):
            log.info("removing %s, left unfinished by an interrupted run", path.name)
            path.unlink()
    for index in finished:
        _, sidecar, stats = shard_paths(folder, index)
        keys = tuple(pq.read_table(sidecar, columns=["key"])["key"].to_pylist())
        info = json.loads(stats.read_text())
        state.summaries.append(ShardSummary(split, index, info["count"], info["bytes"], keys))
        state.done_keys.update(keys)
    state.next_index = finished[-1] + 1 if finished else 0
    return state


def check_fingerprint(folder: Path, config: ShardConfig) -> None:
    """Shards from earlier runs must have been made with the same options, or resuming would mix them."""
    path = folder / CONFIG_FILE
    wanted = config.fingerprint_json()
    if path.exists():
        if path.read_text() != wanted:
            raise PipeError(
                f"{path} records different shard options than this run's; run with the same options, or add --redo to rebuild the shards"
            )
        return
    write_bytes_atomic(path, wanted.encode())


def dataset_histogram(folder: Path, jobs: list[ShardJob], config: ShardConfig) -> np.ndarray:
    """The 512-bin colour histogram of the first `histogram_images` train images (counted once, then reused)."""
    path = folder / HISTOGRAM_FILE
    if path.exists():
        return np.load(path)
    counts = np.zeros(512, dtype=np.int64)
    chosen = [job for job in jobs if job.split == "train"][: config.histogram_images] or jobs[: config.histogram_images]
    with make_progress() as progress:
        task = progress.add_task("dataset colour histogram", total=len(chosen))
        for job in chosen:
            try:
                rgb = read_rgb(config.root, job.color_path)[1]
            except Exception:  # a bad image is reported by the sample itself
                progress.advance(task)
                continue
            image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
            counts += color_histogram(image)[0].numpy()
            progress.advance(task)
    if counts.sum() == 0:
        raise PipeError("no readable train image to count the dataset colour histogram from")
    buffer = io.BytesIO()
    np.save(buffer, counts)
    write_bytes_atomic(path, buffer.getvalue())
    return counts


def _new_pool(workers: int, inputs: SynthInputs) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=init_synth_worker, initargs=(inputs,))


def ordered_outcomes(jobs: list[ShardJob], inputs: SynthInputs, workers: int) -> Iterator[SampleOutcome]:
    """Synthesize `jobs` in parallel, yielding outcomes in job order.

    A worker that dies takes its pool with it: the samples then in flight are retried one at a
    time in a fresh pool, so only the sample that kills a worker again is recorded as crashed.
    """
    if workers <= 0:
        init_synth_worker(inputs)
        for job in jobs:
            yield synthesize(job, inputs)
        return
    window = 4 * workers
    pool = _new_pool(workers, inputs)
    queue: deque[ShardJob] = deque(jobs)
    in_flight: deque[tuple[ShardJob, Future]] = deque()
    try:
        while queue or in_flight:
            while queue and len(in_flight) < window:
                job = queue.popleft()
                in_flight.append((job, pool.submit(synthesize_in_worker, job)))
            job, future = in_flight.popleft()
            try:
                yield future.result()
                continue
            except BrokenProcessPool:
                pass
            retry = [job] + [j for j, _ in in_flight]
            in_flight.clear()
            pool.shutdown(wait=False, cancel_futures=True)
            pool = _new_pool(workers, inputs)
            try:
                yield pool.submit(synthesize_in_worker, retry[0]).result()
            except BrokenProcessPool:
                yield SampleOutcome(retry[0], reason=REASON_WORKER_CRASHED, detail="the worker process died while synthesizing this sample")
                pool.shutdown(wait=False, cancel_futures=True)
                pool = _new_pool(workers, inputs)
            queue.extendleft(reversed(retry[1:]))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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
        table = ledger.read()
        recorded = {k for k, s, sh in zip(table["key"].to_pylist(), table["status"].to_pylist(), table["shard"].to_pylist()) if s == STATUS_OK and sh}
    missing: list[dict] = []
    for split, state in states.items():
        for summary in state.summaries:
            if not set(summary.keys) <= recorded:
                sidecar = shard_paths(folder / split, summary.index)[1]
                missing += ok_rows(pq.read_table(sidecar).to_pylist(), config)
    if missing:
        ledger.append(missing)


def run_shard(config: ShardConfig, redo: bool = False) -> tuple[RunReport, dict[str, ShardState]]:
    root = config.root
    layout = DatasetLayout(root)
    ledger = Ledger(root, SHARDS)
    folder = shards_root(root)
    started = time.perf_counter()
    with stage_lock(layout, SHARDS.stage):
        tmp_dir = layout.tmp(SHARDS.stage)
        shutil.rmtree(tmp_dir, ignore_errors=True)  # leftovers of a killed run
        if redo:
            shutil.rmtree(folder, ignore_errors=True)
            for path in [ledger.path, *ledger.pending_parts()]:
                path.unlink(missing_ok=True)
        jobs = plan_shard(config)
        folder.mkdir(parents=True, exist_ok=True)
        check_fingerprint(folder, config)
        states = {split: scan_split(folder / split, split) for split in SPLITS}
        repair_ledger(ledger, folder, states, config)
        done = set().union(*(s.done_keys for s in states.values()))
        pending = [job for job in jobs if job.key not in done]
        donors = {split: {job.key: job.color_path for job in jobs if job.split == split} for split in SPLITS}
        histogram = dataset_histogram(folder, jobs, config) if "histogram" in config.hints and pending else None
        inputs = SynthInputs(config, donors, histogram)
        new_rows = _pack(pending, inputs, states, ledger, tmp_dir, config) if pending else 0
        ledger.compact()
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return summarize_run(ledger, len(jobs), {job.key for job in pending}, new_rows, started), states


# The tar stream buffers one record before it reaches the file, and the archive ends with padding
# up to a whole record: room for both keeps a closed shard within the byte limit.
TAR_SLACK = 2 * tarfile.RECORDSIZE


def tar_cost(outcome: SampleOutcome) -> int:
    """Upper bound of what adding a sample makes the tar grow by: a header and padding per member."""
    return outcome.nbytes + 1024 * len(outcome.members or {}) + TAR_SLACK


def _pack(pending: list[ShardJob], inputs: SynthInputs, states: dict[str, ShardState], ledger: Ledger, tmp_dir: Path, config: ShardConfig) -> int:
    folder = shards_root(config.root)
    buffer = LedgerBuffer(ledger, RunnerConfig(flush_seconds=config.flush_seconds))
    writers: dict[str, ShardWriter] = {}
    written = 0

    def finish(split: str) -> None:
        nonlocal written
        writer = writers.pop(split)
        rows = writer.rows
        summary = writer.close()
        state = states[split]
        state.summaries.append(summary)
        state.next_index = summary.index + 1
        buffer.add(ok_rows(rows, config))
        written += len(rows)

    try:
        with make_progress() as progress:
            task = progress.add_task(f"shard ({','.join(config.hints)} hints)", total=len(pending))
            for outcome in ordered_outcomes(pending, inputs, config.workers):
                split = outcome.job.split
                if outcome.members is None:
                    buffer.add([failed_ledger_row(outcome, config)])
                    written += 1
                    progress.advance(task)
                    continue
                writer = writers.get(split)
                if writer is not None and writer.count and writer.size + tar_cost(outcome) > config.max_bytes:
                    finish(split)
                    writer = None
                if writer is None:
                    writer = writers[split] = ShardWriter(folder / split, split, states[split].next_index, tmp_dir / split, config.seed, config.fingerprint())
                writer.add(outcome)
                if writer.count >= config.max_samples:
                    finish(split)
                progress.advance(task)
            for split in list(writers):
                finish(split)
    except KeyboardInterrupt:
        for writer in writers.values():
            writer.abandon()
        buffer.flush()
        raise PipeError("interrupted: finished shards are kept; run the same command again to resume") from None
    finally:
        buffer.flush()
    return written
