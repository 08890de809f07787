"""`pipe extract` as self-contained units, for executors that run them on other machines (Ray).

On the local executor, extraction is a pipeline inside one box (decode processes, device batches in
the main process, encode processes: pipeline.extract.stage). On a cluster each unit is one batch of
prepared images that a single worker decodes, runs every chosen method on (on its GPU when the unit
asks for one) and writes, returning the ledger rows. The networks a worker loads stay loaded in that
worker process for the next units of the run. Parameters are drawn from the same generators, seeded
by (seed, method, key), so the files and rows equal the local executor's byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from extractors.ldm import load_ldm
from extractors.methods import METHODS, apply_lines
from extractors.sketchkeras.keras_file import KerasFileError
from extractors.sketchkeras.weights import load_converted
from extractors.weights import WeightsMissing
from pipeline.errors import PipeError
from pipeline.extract.config import ExtractConfig, resolve_device
from pipeline.extract.io import LineOutput, RowContext, failed_row, write_line
from pipeline.extract.loader import DecodeDataset
from pipeline.extract.plan import ExtractItem, method_params


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


# Networks loaded in this worker process, by (methods, device, weights) of the run.
_NETWORKS: dict[tuple, dict[str, torch.nn.Module]] = {}


@dataclass(frozen=True)
class ExtractBatch:
    """Decode, extract and write one unit of prepared images (an executor's `BatchFunction`)."""

    config: ExtractConfig
    context: RowContext

    def __call__(self, items: list[ExtractItem]) -> list[list[dict]]:
        """One list of ledger rows per item (one row per method), in the items' order."""
        device = resolve_device(self.config.device)
        networks = self._networks(device)
        decoded = DecodeDataset(self.config.root, items)
        rows: list[list[dict]] = [[] for _ in items]
        groups: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = {}
        for index, item in enumerate(items):
            sample = decoded[index]
            if sample["reason"]:
                rows[index] = [failed_row(item, method, self.context, sample["reason"], sample["detail"]) for method in item.methods]
                continue
            image = torch.from_numpy(sample["image"]).permute(2, 0, 1)
            groups.setdefault(tuple(image.shape), []).append((index, image))
        for method in self.config.methods:
            settings = self.config.settings(method, device)
            for members in groups.values():
                chosen = [(index, image) for index, image in members if method in items[index].methods]
                if not chosen:
                    continue
                params = [method_params(self.config, settings, method, items[index].key) for index, _ in chosen]
                batch = torch.stack([image for _, image in chosen]).to(device)
                lines = apply_lines(method, batch, params, networks).cpu().numpy()
                for (index, _), sample_params, line in zip(chosen, params, lines):
                    rows[index] += write_line(LineOutput(items[index], method, sample_params, line[0]), self.context)
        return rows

    def _networks(self, device: torch.device) -> dict[str, torch.nn.Module]:
        cache_key = (self.config.methods, str(device), tuple(sorted((k, str(v)) for k, v in self.config.weights.items())))
        if cache_key not in _NETWORKS:
            _NETWORKS[cache_key] = load_networks(self.config, device)
        return _NETWORKS[cache_key]

    def failed(self, item: ExtractItem, reason: str, detail: str) -> list[dict]:
        """The rows of an item that raised or killed its worker: one failed row per method."""
        return [failed_row(item, method, self.context, reason, detail) for method in item.methods]
