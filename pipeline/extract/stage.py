"""`pipe extract`: run line extraction methods over ROOT/prepared/ into ROOT/lines/<method>/, one row each.

Three kinds of work overlap: DataLoader workers decode prepared PNGs a few batches ahead; the main
process groups images by method and size into device batches and runs the methods there; a process
pool encodes and writes the line PNGs. Per-sample parameters are drawn from generators seeded by
(seed, method, key), so the output does not depend on batch composition, worker count or order.
Resume, atomic files and the ledger work as in every stage (see pipeline.runner).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import torch
from torch.utils.data import DataLoader

from extractors.ldm import load_ldm
from extractors.methods import METHODS, apply_lines, draw_params
from extractors.sketchkeras.keras_file import KerasFileError
from extractors.sketchkeras.weights import load_converted
from extractors.weights import WeightsMissing
from manifests.layout import DatasetLayout
from manifests.ledger import Ledger
from manifests.schema import LINES
from pipeline.console import make_progress
from pipeline.errors import PipeError
from pipeline.extract.config import ExtractConfig, resolve_device
from pipeline.extract.io import DecodeDataset, LineOutput, RowContext, collate_decoded, failed_row, write_lines
from pipeline.extract.plan import ExtractItem, line_id, plan_extract
from pipeline.runner import REASON_EXCEPTION, REASON_WORKER_CRASHED, LedgerBuffer, RunnerConfig, RunReport, describe_exception, init_worker, new_process_pool, stage_lock, summarize_run
from manifests.seeding import sample_rng

log = logging.getLogger(__name__)

SEED_STAGE = "extract"


def load_networks(config: ExtractConfig, device: torch.device) -> dict[str, torch.nn.Module]:
    """The networks the chosen methods need, on `device`; a missing or wrong file is one clear error."""
    networks: dict[str, torch.nn.Module] = {}
    for method in config.methods:
        if not METHODS[method].needs_weights:
            continue
        try:
            path = config.weights_path(method)
            networks[method] = load_converted(path, device) if method == "sketchkeras" else load_ldm(path, device)
        except (WeightsMissing, KerasFileError, ValueError) as exc:
            raise PipeError(str(exc)) from None
    return networks


def run_extract(config: ExtractConfig) -> RunReport:
    root = config.root
    layout = DatasetLayout(root)
    ledger = Ledger(root, LINES)
    device = resolve_device(config.device)
    started = time.perf_counter()
    with stage_lock(layout, LINES.stage):
        tmp_dir = layout.tmp(LINES.stage)
        shutil.rmtree(tmp_dir, ignore_errors=True)  # leftovers of a killed run
        tmp_dir.mkdir(parents=True, exist_ok=True)
        networks = load_networks(config, device)
        planned, items = plan_extract(root, config.methods, set() if config.redo else ledger.ids())
        context = RowContext(root=root, tmp_dir=tmp_dir, seed=config.seed, device=str(device), png_compression=config.png_compression)
        new_rows = _Extraction(config, device, networks, context, ledger).run(items) if items else 0
        ledger.compact()
        shutil.rmtree(tmp_dir, ignore_errors=True)
    new_ids = {line_id(method, item.key) for item in items for method in item.methods}
    return summarize_run(ledger, planned, new_ids, new_rows, started)


def _init_decoder(worker_id: int) -> None:
    init_worker()


class _Writer:
    """Encodes and writes batches of outputs in a process pool (or inline), a bounded number in flight."""

    def __init__(self, workers: int, context: RowContext) -> None:
        self.context = context
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = new_process_pool(workers) if workers > 0 else None
        self.in_flight: dict[Future, list[LineOutput]] = {}
        self.ready: list[list[dict]] = []

    def submit(self, outputs: list[LineOutput]) -> None:
        if not outputs:
            return
        if self.pool is None:
            self.ready.append(write_lines(outputs, self.context))
            return
        while len(self.in_flight) >= 2 * self.workers:
            self._collect(block=True)
        self.in_flight[self.pool.submit(write_lines, outputs, self.context)] = outputs

    def finished_rows(self) -> list[list[dict]]:
        if self.in_flight:
            self._collect(block=False)
        ready, self.ready = self.ready, []
        return ready

    def drain(self) -> list[list[dict]]:
        while self.in_flight:
            self._collect(block=True)
        return self.finished_rows()

    def _collect(self, block: bool) -> None:
        done, _ = wait(self.in_flight, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            outputs = self.in_flight.pop(future)
            try:
                self.ready.append(future.result())
            except BrokenProcessPool:
                # The writer died (killed, out of memory): its outputs are recorded failed and retried next run.
                detail = "the writer process died while encoding this sample"
                self.ready.append([failed_row(o.item, o.method, self.context, REASON_WORKER_CRASHED, detail, o.params) for o in outputs])
                self._restart()

    def _restart(self) -> None:
        assert self.pool is not None
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = new_process_pool(self.workers)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


class _Extraction:
    def __init__(self, config: ExtractConfig, device: torch.device, networks: dict, context: RowContext, ledger: Ledger) -> None:
        self.config, self.device, self.networks, self.context = config, device, networks, context
        self.ledger = ledger
        self.settings = {method: config.settings(method, device) for method in config.methods}
        self.buckets: dict[tuple[str, tuple[int, ...]], list[tuple[ExtractItem, torch.Tensor]]] = defaultdict(list)
        if config.workers <= 0:
            self.decoders, encoders = 0, 0
        elif config.workers == 1:
            self.decoders, encoders = 1, 0
        else:
            self.decoders = max(1, config.workers // 2)
            encoders = config.workers - self.decoders
        self.writer = _Writer(encoders, context)

    def run(self, items: list[ExtractItem]) -> int:
        """Extract every (item, method) pair; returns the number of ledger rows written."""
        buffer = LedgerBuffer(self.ledger, RunnerConfig(flush_seconds=self.config.flush_seconds))
        loader = DataLoader(
            DecodeDataset(self.config.root, items),
            batch_size=self.config.batch_size,
            collate_fn=collate_decoded,
            num_workers=self.decoders,
            prefetch_factor=4 if self.decoders else None,
            multiprocessing_context="spawn" if self.decoders else None,
            worker_init_fn=_init_decoder if self.decoders else None,
        )
        written = 0
        total = sum(len(item.methods) for item in items)
        label = f"extract {','.join(self.config.methods)} on {self.device.type}"
        try:
            with make_progress() as progress:
                task = progress.add_task(label, total=total)

                def record(batches: list[list[dict]]) -> None:
                    nonlocal written
                    for rows in batches:
                        buffer.add(rows)
                        written += len(rows)
                        progress.advance(task, len(rows))

                for chunk in loader:
                    for index, reason, detail in chunk["failures"]:
                        item = items[index]
                        record([[failed_row(item, m, self.context, reason, detail) for m in item.methods]])
                    for indices, stack in chunk["stacks"]:
                        for index, image in zip(indices, stack):
                            self._add(items[index], image)
                    record(self.writer.finished_rows())
                for method, shape in list(self.buckets):
                    self._run_batch(method, self.buckets.pop((method, shape)))
                record(self.writer.drain())
        except KeyboardInterrupt:
            buffer.flush()
            raise PipeError(f"interrupted: {written} rows saved; run the same command again to resume") from None
        finally:
            buffer.flush()
            self.writer.close()
        return written

    def _add(self, item: ExtractItem, image: torch.Tensor) -> None:
        chw = image.permute(2, 0, 1)
        for method in item.methods:
            bucket_key = (method, tuple(chw.shape))
            bucket = self.buckets[bucket_key]
            bucket.append((item, chw))
            if len(bucket) >= self.config.batch_size:
                self._run_batch(method, self.buckets.pop(bucket_key))

    def _params(self, method: str, item: ExtractItem) -> dict:
        return draw_params(self.settings[method], sample_rng(self.config.seed, SEED_STAGE, method, item.key))

    def _run_batch(self, method: str, samples: list[tuple[ExtractItem, torch.Tensor]]) -> None:
        params = [self._params(method, item) for item, _ in samples]
        images = torch.stack([image for _, image in samples]).to(self.device, non_blocking=True)
        try:
            lines = apply_lines(method, images, params, self.networks).cpu().numpy()
            outputs = [LineOutput(item, method, p, lines[i, 0]) for i, ((item, _), p) in enumerate(zip(samples, params))]
            self.writer.submit(outputs)
        except Exception as exc:
            log.debug("batch of %d for %s failed (%s); retrying one by one", len(samples), method, exc)
            self._run_one_by_one(method, samples, params, images)

    def _run_one_by_one(self, method: str, samples, params: list[dict], images: torch.Tensor) -> None:
        outputs, failures = [], []
        for index, ((item, _), sample_params) in enumerate(zip(samples, params)):
            try:
                lines = apply_lines(method, images[index : index + 1], [sample_params], self.networks).cpu().numpy()
                outputs.append(LineOutput(item, method, sample_params, lines[0, 0]))
            except Exception as exc:
                failures.append(failed_row(item, method, self.context, REASON_EXCEPTION, describe_exception(exc), sample_params))
        self.writer.submit(outputs)
        if failures:
            self.writer.ready.append(failures)
