"""Hints and drafts drawn for every training batch on its device, from the schemes the shards record.

`pipe shard` records which hint schemes, hint-free share and draft artifacts it drew from
(ROOT/shards/_config.json). With `pipe train --synth device` (the default) the trainer reads only the
colour and line members and draws those schemes again for each batch, at the training size, on the
device the batch is on: a sample gets new hints and a new draft every time it is seen, and the loader
decodes two images a sample instead of four. Draws come from generators seeded by (seed, "train-synth",
step, what, key), so a step's batch is the same after a resume and on every machine; paste donors are
the other images of the batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from manifests.layout import DatasetLayout
from manifests.seeding import sample_rng
from synth.artifacts import apply_artifacts, draw_artifacts
from synth.common import DrawInput, SynthContext
from synth.hints import apply_hints, draw_hint

SEED_LABEL = "train-synth"
# The palette is a separate member (12 channels), not a hint image: it stays in the shards.
NOT_DRAWN = ("palette",)
SYNTH_CHOICES = ("device", "shards")


@dataclass(frozen=True)
class BatchSynth:
    """Draws `hints` (and, with `artifacts`, drafts) for a batch; `hints` empty leaves the hint alone."""

    hints: tuple[str, ...] = ()
    no_hint_share: float = 0.0
    artifacts: tuple[str, ...] = ()
    artifacts_near_hints: bool = False
    seed: int = 0
    dataset_histogram: np.ndarray | None = field(default=None, compare=False)

    @classmethod
    def from_shards(cls, root: Path, seed: int) -> BatchSynth:
        """The schemes ROOT's shards were made with (ROOT/shards/_config.json)."""
        layout = DatasetLayout(root)
        made = json.loads(layout.shard_config.read_text())
        hints = tuple(name for name in made.get("hints", []) if name not in NOT_DRAWN)
        histogram = np.load(layout.shard_histogram) if "histogram" in hints and layout.shard_histogram.is_file() else None
        if "histogram" in hints and histogram is None:
            raise FileNotFoundError(f"{layout.shard_histogram} is missing: histogram hints need the dataset histogram `pipe shard` counts")
        return cls(hints, float(made.get("no_hint_share", 0.0)), tuple(made.get("artifacts", [])), bool(made.get("artifacts_near_hints", False)), seed, histogram)

    @property
    def draws_hints(self) -> bool:
        return bool(self.hints)

    @property
    def draws_drafts(self) -> bool:
        return bool(self.artifacts)

    def __call__(self, batch: dict, step: int, hints: bool = True, drafts: bool = True) -> dict:
        """The batch (float [0, 1] images on their device) with "hint" and/or "draft" drawn for `step`."""
        hints, drafts = hints and self.draws_hints, drafts and self.draws_drafts
        if not (hints or drafts):
            return batch
        color = batch["color"].mul(255).round_().to(torch.uint8)
        keys = [str(key) for key in batch["__key__"]]
        context = SynthContext(dataset_histogram=self.dataset_histogram, donor_keys=tuple(keys))
        # The draws read a few pixels and histograms per sample: one copy to the host beats a sync for each.
        samples = [DrawInput(key, image) for key, image in zip(keys, color.cpu())]
        out = dict(batch)
        hint = None
        if hints or self.artifacts_near_hints:
            params = [draw_hint(sample_rng(self.seed, SEED_LABEL, str(step), "hint", s.key), s, context, self.hints, self.no_hint_share) for s in samples]
            hint = apply_hints(color, params)
            if hints:
                out["hint"] = hint.float().div_(255)
        if drafts:
            given = hint[:, 3].nonzero().cpu().numpy() if hint is not None and self.artifacts_near_hints else None
            params = []
            for index, sample in enumerate(samples):
                near = replace(context, hint_points=given[given[:, 0] == index, 1:]) if given is not None else context
                params.append(draw_artifacts(sample_rng(self.seed, SEED_LABEL, str(step), "artifacts", sample.key), sample, near, self.artifacts))
            out["draft"] = apply_artifacts(color, params, dict(zip(keys, color))).float().div_(255)
        return out
