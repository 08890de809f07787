"""`pipe extract` on a CPU: each worker decodes a prepared image, runs the classic methods' OpenCV forms
on it and writes the lines, so no image crosses between processes (only the items' paths and the rows).

This is the fast path on CPUs (see extractors.opencv_forms for why, and bench/extract.py for the
figures); the device batches of pipeline.extract.stage stay for CUDA and for the network methods.
Parameters are drawn from the same generators as every other path, and each row records
`impl: opencv` in its params.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from extractors import opencv_forms
from pipeline.extract.io import LineOutput, RowContext, decode_prepared, failed_row, write_line
from pipeline.extract.plan import ExtractItem, method_params

if TYPE_CHECKING:
    from pipeline.extract.config import ExtractConfig


def opencv_methods(methods: tuple[str, ...], device_type: str) -> tuple[str, ...]:
    """The chosen methods that run as OpenCV forms in the workers: the classic ones, on a CPU."""
    return tuple(m for m in methods if device_type == "cpu" and m in opencv_forms.FORMS)


@dataclass(frozen=True)
class OpenCVItem:
    """Decode, extract and write one item (an executor's per-item function): its ledger rows."""

    config: ExtractConfig
    context: RowContext
    settings: dict[str, dict[str, Any]]  # by method: the run's option settings (tuples drawn per sample)

    def __call__(self, item: ExtractItem) -> list[dict]:
        decoded = decode_prepared(self.config.root, item)
        if decoded["reason"]:
            return self.failed(item, decoded["reason"], decoded["detail"])
        rows: list[dict] = []
        for method in item.methods:
            params = {**method_params(self.config, self.settings[method], method, item.key), "impl": opencv_forms.IMPL}
            lines = opencv_forms.extract(method, decoded["image"], params)
            rows += write_line(LineOutput(item, method, params, lines), self.context)
        return rows

    def failed(self, item: ExtractItem, reason: str, detail: str) -> list[dict]:
        return [failed_row(item, method, self.context, reason, detail) for method in item.methods]
