"""`pipe extract`: run line extraction methods over ROOT/prepared/ into ROOT/lines/<method>/, one row each.

On a CPU the classic methods run as OpenCV forms inside the workers, one image at a time
(pipeline.extract.opencv_units). For CUDA and the network methods, three kinds of work overlap: DataLoader workers decode prepared PNGs a few batches ahead; the main
process groups images by method and size into device batches and runs the methods there; a process
pool encodes and writes the line PNGs. Per-sample parameters are drawn from generators seeded by
(seed, method, key), so the output does not depend on batch composition, worker count or order.
Resume, atomic files, the ledger and failure isolation work as in every stage (pipeline.session, pipeline.executors).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections import defaultdict
from dataclasses import asdict

import pyarrow as pa
import torch
from torch.utils.data import DataLoader

from extractors.methods import apply_lines
from manifests.reasons import EXCEPTION
from manifests.ledger import Ledger
from manifests.schema import LINES, PREPARED
from pipeline.executors import BatchFunction, Executor, Finished, children_ignore_ctrl_c, describe_exception, local, quiet_worker, spec_of, start_executor
from pipeline.extract.config import ExtractConfig, resolve_device
from pipeline.extract.io import LineOutput, RowContext, failed_row, output_failed, write_line
from pipeline.extract.loader import DecodeDataset, collate_decoded
from pipeline.extract.plan import ExtractItem, line_id, method_params, plan_extract, prepared_table
from pipeline.extract.opencv_units import OpenCVItem, cpu_worker_environment, opencv_methods, start_cpu_worker
from pipeline.extract.units import ExtractBatch, load_networks
from pipeline.recorded_options import RecordedOptions
from pipeline.session import RunReport, StageSession
from pipeline.up_to_date import fingerprint, ledger_digest, recorded_summary, remember

log = logging.getLogger(__name__)



def run_extract(config: ExtractConfig) -> RunReport:
    device = resolve_device(config.device)
    options = RecordedOptions(config.options(device))
    inputs = None if config.redo else {"prepared": ledger_digest(Ledger(config.root, PREPARED)), "methods": ",".join(config.methods)}
    recorded = recorded_summary(config.root, LINES.stage, fingerprint(inputs, Ledger(config.root, LINES), options.values) if inputs else None)
    images = prepared_table(config.root) if recorded is None else None  # before anything is written: a wrong ROOT leaves no trace
    with StageSession(config.root, LINES.stage, LINES, save_every=config.flush_seconds, options=options, redo=config.redo, upstream=("prepared",)) as session:
        if recorded is not None:  # nothing the last finished run was made from has changed
            return session.recorded_report(recorded)
        planned, items = plan_extract(images, config.methods, pa.array([], pa.string()) if config.redo else session.ledger.id_array())
        del images  # a million keys and paths, not needed past the plan
        context = RowContext(root=config.root, tmp_dir=session.tmp_dir, seed=config.seed, device=str(device), png_compression=config.png_compression)
        in_workers = opencv_methods(config.methods, device.type)
        per_image = _only(items, lambda method: method in in_workers)
        batched = _only(items, lambda method: method not in in_workers)
        if per_image:
            _extract_in_workers(config, device, context, session, per_image)
        if batched and config.executor == "ray":
            _extract_on_cluster(config, device, context, session, batched)
        elif batched:
            _Extraction(config, device, load_networks(config, device), context, session).run(batched)
    report = session.report(planned, {line_id(method, item.key) for item in items for method in item.methods})
    remember(config.root, LINES.stage, fingerprint(inputs, session.ledger, options.values) if inputs else None, asdict(report))
    return report


def _only(items: list[ExtractItem], keep) -> list[ExtractItem]:  # noqa: ANN001
    """The items with just the methods `keep` accepts (items left with none dropped)."""
    kept = [ExtractItem(item.key, item.source_path, tuple(m for m in item.methods if keep(m))) for item in items]
    return [item for item in kept if item.methods]


def _extract_in_workers(config: ExtractConfig, device: torch.device, context: RowContext, session: StageSession, items: list[ExtractItem]) -> None:
    """The classic methods on a CPU: each worker decodes, runs the OpenCV forms and writes, per image."""
    unit = OpenCVItem(config, context, {method: config.settings(method, device) for method in config.methods})
    label = f"extract {','.join(dict.fromkeys(m for item in items for m in item.methods))} on cpu (OpenCV)"
    # Only the processes of our own pool are set up as CPU workers: not this one, not Ray's.
    own_pool = config.executor == "local" and config.workers > 0
    executor = start_executor(spec_of(config), unit, unit.failed, initializer=start_cpu_worker if own_pool else None)
    with cpu_worker_environment() if own_pool else contextlib.nullcontext():
        _run_units(executor, session, items, label, config.batch_size)


def _run_units(executor: Executor, session: StageSession, items: list[ExtractItem], label: str, unit_size: int) -> None:
    """Submit the items in units of `unit_size` and record every row the executor hands back."""
    total = sum(len(item.methods) for item in items)
    with executor, session.progress(label, total=total) as bar:

        def record(finished: list[Finished]) -> None:
            for done in finished:
                rows = done.flat()
                session.record(rows)
                bar.advance(len(rows))

        for start in range(0, len(items), unit_size):
            executor.submit(items[start : start + unit_size])
            record(executor.finished())
        record(list(executor.drain()))


def _init_decoder(worker_id: int) -> None:
    quiet_worker()


def _extract_on_cluster(config: ExtractConfig, device: torch.device, context: RowContext, session: StageSession, items: list[ExtractItem]) -> None:
    """Each unit of --batch-size images decoded, extracted and written by one worker (one GPU each
    when the run is on CUDA)."""
    batch = ExtractBatch(config, context)
    num_gpus = 1 if device.type == "cuda" else 0
    executor = start_executor(spec_of(config), BatchFunction(batch), batch.failed, num_gpus=num_gpus, stateful=True)
    _run_units(executor, session, items, f"extract {','.join(config.methods)} on ray ({device.type})", config.batch_size)


class _Extraction:
    def __init__(self, config: ExtractConfig, device: torch.device, networks: dict, context: RowContext, session: StageSession) -> None:
        self.config, self.device, self.networks, self.context = config, device, networks, context
        self.session = session
        # Rows decided in this process (undecodable inputs, device failures), recorded with the next batch.
        self.local_rows: list[dict] = []
        self.settings = {method: config.settings(method, device) for method in config.methods}
        self.buckets: dict[tuple[str, tuple[int, ...]], list[tuple[ExtractItem, torch.Tensor]]] = defaultdict(list)
        workers = config.workers
        if workers <= 0:
            self.decoders, encoders = 0, 0
        elif workers == 1:
            self.decoders, encoders = 1, 0
        else:
            self.decoders = max(1, workers // 2)
            encoders = workers - self.decoders
        self.writer: Executor = start_executor(
            local(encoders), functools.partial(write_line, context=context), functools.partial(output_failed, context=context)
        )

    def run(self, items: list[ExtractItem]) -> None:
        """Extract every (item, method) pair, recording one ledger row each."""
        loader = DataLoader(
            DecodeDataset(self.config.root, items),
            batch_size=self.config.batch_size,
            collate_fn=collate_decoded,
            num_workers=self.decoders,
            prefetch_factor=4 if self.decoders else None,
            multiprocessing_context="spawn" if self.decoders else None,
            worker_init_fn=_init_decoder if self.decoders else None,
        )
        total = sum(len(item.methods) for item in items)
        label = f"extract {','.join(self.config.methods)} on {self.device.type}"
        with self.writer, self.session.progress(label, total=total) as bar:

            def record(finished) -> None:  # noqa: ANN001
                rows = [row for unit in finished for row in unit.flat()] + self.local_rows
                self.local_rows = []
                self.session.record(rows)
                bar.advance(len(rows))

            with children_ignore_ctrl_c():
                chunks = iter(loader)  # starts the decode workers
            for chunk in chunks:
                for index, reason, detail in chunk["failures"]:
                    item = items[index]
                    self.local_rows += [failed_row(item, m, self.context, reason, detail) for m in item.methods]
                for indices, stack in chunk["stacks"]:
                    for index, image in zip(indices, stack):
                        self._add(items[index], image)
                record(self.writer.finished())
            for method, shape in list(self.buckets):
                self._run_batch(method, self.buckets.pop((method, shape)))
            record(self.writer.drain())

    def _add(self, item: ExtractItem, image: torch.Tensor) -> None:
        chw = image.permute(2, 0, 1)
        for method in item.methods:
            bucket_key = (method, tuple(chw.shape))
            bucket = self.buckets[bucket_key]
            bucket.append((item, chw))
            if len(bucket) >= self.config.batch_size:
                self._run_batch(method, self.buckets.pop(bucket_key))

    def _run_batch(self, method: str, samples: list[tuple[ExtractItem, torch.Tensor]]) -> None:
        params = [method_params(self.config, self.settings[method], method, item.key) for item, _ in samples]
        images = torch.stack([image for _, image in samples]).to(self.device, non_blocking=True)
        try:
            lines = apply_lines(method, images, params, self.networks).cpu().numpy()
        except Exception as exc:  # noqa: BLE001 - one bad sample must not fail its batch: find it
            log.debug("batch of %d for %s failed (%s); retrying one by one", len(samples), method, exc)
            self._run_one_by_one(method, samples, params, images)
            return
        self._write([LineOutput(item, method, p, lines[i, 0]) for i, ((item, _), p) in enumerate(zip(samples, params))])

    def _write(self, outputs: list[LineOutput]) -> None:
        self.writer.submit(outputs)

    def _run_one_by_one(self, method: str, samples, params: list[dict], images: torch.Tensor) -> None:
        outputs = []
        for index, ((item, _), sample_params) in enumerate(zip(samples, params)):
            try:
                lines = apply_lines(method, images[index : index + 1], [sample_params], self.networks).cpu().numpy()
                outputs.append(LineOutput(item, method, sample_params, lines[0, 0]))
            except Exception as exc:  # noqa: BLE001 - the sample that raises gets the failed row, the batch goes on
                self.local_rows.append(failed_row(item, method, self.context, EXCEPTION, describe_exception(exc), sample_params))
        self._write(outputs)
