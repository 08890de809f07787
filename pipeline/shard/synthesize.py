"""The worker side of `pipe shard`: one sample's line, hint, draft and JSON, encoded as tar members.

Runs in spawn worker processes, one sample at a time (torch on one thread each), so a sample's bytes
never depend on what else is being processed. Every random choice comes from generators seeded by
(seed, "shard", what, key) and is written into the sample's JSON.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from extractors.ops import rgb_to_gray_uint8
from manifests.images import decode_rgb, encode_jpeg, encode_png
from manifests.reasons import DECODE_ERROR, MISSING_INPUT, NO_LINES
from manifests.seeding import sample_rng
from pipeline.shard.config import ShardConfig
from pipeline.shard.plan import ShardJob
from synth.artifacts import apply_artifacts, donor_keys_of, draw_artifacts
from synth.common import DonorKeys, DrawInput, SynthContext
from synth.hints import apply_hints, draw_hint
from synth.hints.palette import top_colors
from synth.lines import GRAY_SOURCE, apply_line_augment, draw_line_augment

SEED_STAGE = "shard"
# The hint scheme recorded for a lean train sample (`pipe shard --lean-train`): drawn by the trainer.
TRAINER_DRAWN = "trainer"


class SampleError(Exception):
    """A foreseen problem with one sample's inputs; `reason` is the ledger's reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class SynthInputs:
    """What every worker shares: the options, the donor images per split and the dataset histogram."""

    config: ShardConfig
    donors: dict[str, dict[str, str]]  # split -> {key: color path}
    dataset_histogram: np.ndarray | None
    # Per split, the donor keys in order with O(1) lookups: built once per worker, not per sample.
    donor_keys: dict[str, DonorKeys] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "donor_keys", {split: DonorKeys(paths) for split, paths in self.donors.items()})

    def __getstate__(self) -> dict:  # workers rebuild the lookups instead of receiving them pickled
        state = dict(self.__dict__)
        state.pop("donor_keys", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()


@dataclass
class SampleOutcome:
    job: ShardJob
    members: dict[str, bytes] | None = None  # extension -> bytes, e.g. "line.png"
    line_source: str = ""
    hint: str = ""
    reason: str = ""
    detail: str = ""

    @property
    def nbytes(self) -> int:
        return sum(len(v) for v in (self.members or {}).values())

    def member_digests_by_name(self) -> dict[str, str]:
        return {name: hashlib.sha256(data).hexdigest() for name, data in (self.members or {}).items()}


_INPUTS: SynthInputs | None = None


def init_synth_worker(inputs: SynthInputs) -> None:
    global _INPUTS
    torch.set_num_threads(1)  # parallelism comes from processes
    _INPUTS = inputs


def synthesize_in_worker(job: ShardJob) -> list[SampleOutcome]:
    """The executor's per-item function (after `init_synth_worker`): the job's one outcome."""
    assert _INPUTS is not None, "init_synth_worker was not run in this process"
    return [synthesize(job, _INPUTS)]


def synthesize(job: ShardJob, inputs: SynthInputs) -> SampleOutcome:
    """Foreseen problems with the inputs come back as an outcome with a reason; anything else
    raises, and the executor records it against this sample alone."""
    try:
        return _synthesize(job, inputs)
    except SampleError as exc:
        return SampleOutcome(job, reason=exc.reason, detail=str(exc))


def read_rgb(root: Path, relative: str) -> tuple[bytes, np.ndarray]:
    """(file bytes, RGB uint8 (H, W, 3)) of an image in the dataset."""
    path = root / relative
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SampleError(MISSING_INPUT, f"cannot read {relative}: {type(exc).__name__}: {exc}") from None
    rgb = decode_rgb(data) if data else None
    if rgb is None:
        raise SampleError(DECODE_ERROR, f"OpenCV cannot decode {relative} ({len(data)} bytes)")
    return data, rgb


def read_line(root: Path, relative: str, height: int, width: int) -> np.ndarray:
    path = root / relative
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.exists() else None
    if gray is None:
        reason = DECODE_ERROR if path.exists() else MISSING_INPUT
        raise SampleError(reason, f"cannot read line art {relative}")
    if gray.shape != (height, width):
        gray = cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)
    return gray


def encode_member(image: np.ndarray, name: str, config: ShardConfig) -> bytes:
    """A dense member (grey or BGR) as the options store it: JPEG of --jpeg-quality, or PNG."""
    return encode_jpeg(image, config.jpeg_quality) if name in config.jpeg else encode_png(image, config.png_compression)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def as_batch(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]


def _read_donors(root: Path, key: str, image: torch.Tensor, artifact_params: dict, paths: dict[str, str]) -> dict[str, torch.Tensor]:
    """The paste donors' images. An unreadable donor is replaced by the image itself, and the
    parameters say so (`unreadable_donor`): a bad neighbour must not fail this sample."""
    donors = {key: image}
    for donor in sorted(donor_keys_of([artifact_params]) - {key}):
        try:
            donors[donor] = as_batch(read_rgb(root, paths[donor])[1])[0]
        except SampleError:
            for paste in artifact_params["paste"]["pastes"]:
                if paste["donor"] == donor:
                    paste.update(donor=key, unreadable_donor=donor)
    return donors


def _hint_and_draft(job: ShardJob, inputs: SynthInputs, image: torch.Tensor, sample: DrawInput, context: SynthContext,
                    members: dict[str, bytes]) -> tuple[dict, dict]:
    """Draw and apply the sample's hint and (with --artifacts) draft, adding their members; their parameters."""
    config = inputs.config
    hint_params = draw_hint(sample_rng(config.seed, SEED_STAGE, "hint", job.key), sample, context, config.hints, config.no_hint_share)
    hint = apply_hints(image, [hint_params])[0].permute(1, 2, 0).numpy()
    members["hint.png"] = encode_png(cv2.cvtColor(hint, cv2.COLOR_RGBA2BGRA), config.png_compression)
    artifact_params: dict = {}
    if config.artifacts:
        if config.artifacts_near_hints:
            context = replace(context, hint_points=np.argwhere(hint[..., 3] > 0))
        artifact_params = draw_artifacts(sample_rng(config.seed, SEED_STAGE, "artifacts", job.key), sample, context, config.artifacts)
        donors = _read_donors(config.root, job.key, image[0], artifact_params, inputs.donors.get(job.split, {}))
        draft = apply_artifacts(image, [artifact_params], donors)[0].permute(1, 2, 0).numpy()
        members[config.member_name("draft")] = encode_member(cv2.cvtColor(draft, cv2.COLOR_RGB2BGR), "draft", config)
    return hint_params, artifact_params


def _synthesize(job: ShardJob, inputs: SynthInputs) -> SampleOutcome:
    config, root = inputs.config, inputs.config.root
    color_bytes, rgb = read_rgb(root, job.color_path)
    height, width = rgb.shape[:2]
    image = as_batch(rgb)
    sample = DrawInput(job.key, image[0])
    context = SynthContext(dataset_histogram=inputs.dataset_histogram, donor_keys=inputs.donor_keys.get(job.split, DonorKeys()))

    available = {method: (path, params) for method, path, params in job.lines}
    try:
        line_params = draw_line_augment(sample_rng(config.seed, SEED_STAGE, "line", job.key), config.lines, set(available))
    except ValueError as exc:
        raise SampleError(NO_LINES, str(exc)) from None
    source = line_params["source"]
    if source == GRAY_SOURCE:
        raw_lines = rgb_to_gray_uint8(image)
    else:
        raw_lines = torch.from_numpy(read_line(root, available[source][0], height, width))[None, None]
    lines = apply_line_augment(raw_lines, [line_params])[0, 0].numpy()

    members = {
        config.member_name("color"): color_bytes if "color" not in config.jpeg else encode_member(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), "color", config),
        config.member_name("line"): encode_member(lines, "line", config),
    }
    if config.lean_train and job.split == "train":
        # `pipe train --synth device` draws this sample's hints and drafts per step from the recorded schemes.
        hint_params, artifact_params = {"scheme": TRAINER_DRAWN}, {}
    else:
        hint_params, artifact_params = _hint_and_draft(job, inputs, image, sample, context, members)
    if config.with_palette:
        members["palette.npy"] = npy_bytes(top_colors(image[0]))
    record = {
        "key": job.key,
        "split": job.split,
        "seed": config.seed,
        "size": [height, width],
        "source": job.color_path,
        "line": {**line_params, "path": available[source][0] if source != GRAY_SOURCE else None,
                 "extraction": json.loads(available[source][1]) if source != GRAY_SOURCE else None},
        "hint": hint_params,
        "artifacts": artifact_params,
    }
    members["json"] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return SampleOutcome(job, members=members, line_source=source, hint=hint_params["scheme"])
