"""Score trained checkpoints on a split of the shards: colour every sample under each hint setting,
collect Inception features and per-image scores, and reduce them to the report's numbers."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from extractors.weights import require_weights
from manifests.atomic import write_bytes_atomic
from manifests.layout import DatasetLayout
from manifests.shards import STATS_SUFFIX, finished_shards
from manifests.version import PIPE_VERSION
from pipeline.executors import default_workers
from pipeline.session import StageSession
from pipeline.shard.config import SPLITS
from train.colorize import colour_batch
from pipeline.console import console
from pipeline.eval.hints import eval_hints, hintless_note, setting_label
from train.inference import LoadedGenerator, load_stage
from pipeline.eval.samples import Unscored, eval_loader, sample_positions, unscored_samples
from train.loader import to_device
from train.metrics.frechet import KID_SUBSET_SIZE, KID_SUBSETS, frechet_distance, gaussian_stats, kernel_inception_distance
from train.metrics.cielab import srgb_to_lab
from train.metrics.hint_scores import COLOUR_TOLERANCE, LINE_THRESHOLD, WINDOW_RADIUS, containment_from_lab, hint_adherence
from train.metrics.image_quality import psnr, ssim
from train.metrics.inception_features import InceptionFeatures



@dataclass(frozen=True)
class EvalConfig:
    root: Path
    draft: Path
    refine: Path | None = None
    split: str = "val"
    settings: tuple[str, ...] = ("none", "cfid")
    name: str | None = None
    inception_weights: Path | None = None  # None: the weights folder's file
    fid: bool = True
    kid_subsets: int = KID_SUBSETS
    kid_subset_size: int = KID_SUBSET_SIZE
    batch_size: int = 16
    device: str = "auto"
    limit: int | None = None  # score only the first N samples of the split
    workers: int = field(default_factory=lambda: min(4, default_workers()))  # loader processes decoding the shards (0: in this process)
    grid_samples: int = 8
    seed: int = 0
    weights: str = "auto"  # each checkpoint's EMA or raw generator (train.inference.chosen_weights)
    window_radius: int = WINDOW_RADIUS
    line_threshold: int = LINE_THRESHOLD
    colour_tolerance: float = COLOUR_TOLERANCE

    def report_name(self) -> str:
        if self.name:
            return self.name
        parts = [run_name(self.draft)] + ([run_name(self.refine)] if self.refine else [])
        return "+".join(parts) + f"-{self.split}"


def run_name(checkpoint: Path) -> str:
    """runs/NAME/checkpoints/last.pt -> NAME; any other file -> its stem."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent.parent.name if checkpoint.parent.name == "checkpoints" else checkpoint.stem


@dataclass
class GridRow:
    key: str
    line: np.ndarray  # H x W uint8
    hint: np.ndarray  # H x W x 4 uint8
    output: np.ndarray  # H x W x 3 uint8
    truth: np.ndarray


@dataclass
class ImageScores:
    """One output image's scores under one hint setting."""

    psnr: float
    ssim: float
    feature: np.ndarray | None = None  # its Inception pool features
    adherence: np.ndarray | None = None  # CIEDE2000 per hint pixel
    adherence_floor: np.ndarray | None = None  # the truth's own error at those pixels
    leak_shares: list[float] = field(default_factory=list)
    hints_on_lines: int = 0
    hints_absent: int = 0


@dataclass
class SettingScores:
    """Everything gathered for one hint setting, filed by sample position (batches arrive in the
    order the loader workers finish them; the report reads them in the split's order)."""

    images: dict[int, ImageScores] = field(default_factory=dict)
    grid: dict[int, GridRow] = field(default_factory=dict)

    def ordered(self) -> list[ImageScores]:
        return [self.images[position] for position in sorted(self.images)]

    def grid_rows(self) -> list[GridRow]:
        return [self.grid[position] for position in sorted(self.grid)]


def _hwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).cpu().numpy()


@dataclass(frozen=True)
class TruthBatch:
    """One batch's truths as every hint setting scores against them: uint8 on the device, HWC on
    the host, and CIELAB on the device (only when a hinted setting needs it)."""

    images: torch.Tensor  # uint8 (B, 3, H, W) on the eval device
    host: np.ndarray
    lab: torch.Tensor | None


def add_hint_scores(scores: ImageScores, output: np.ndarray, output_lab: torch.Tensor, truth: np.ndarray, truth_lab: torch.Tensor, line: np.ndarray, hint: np.ndarray, config: EvalConfig) -> None:
    """Hint adherence (of the output, and of the truth as the floor) and colour containment of one
    image: output and truth uint8 H x W x 3, their CIELAB (3, H, W) on the device, line H x W, hint H x W x 4."""
    scores.adherence = hint_adherence(output, hint, config.window_radius)
    scores.adherence_floor = hint_adherence(truth, hint, config.window_radius)
    containment = containment_from_lab(output_lab, truth_lab, line, hint, config.line_threshold, config.colour_tolerance)
    scores.leak_shares = list(containment.leak_shares)
    scores.hints_on_lines = containment.on_lines
    scores.hints_absent = containment.absent


def _models(config: EvalConfig, device: torch.device) -> tuple[LoadedGenerator, LoadedGenerator | None]:
    draft = load_stage(config.draft, "draft", device, config.weights)
    refine = load_stage(config.refine, "refine", device, config.weights) if config.refine is not None else None
    return draft, refine


def _stats(values: list[float]) -> dict:
    array = np.asarray(values, np.float64)
    if array.size == 0:
        return {"count": 0}
    return {"count": int(array.size), "mean": float(array.mean()), "std": float(array.std()), "median": float(np.median(array)), "p90": float(np.percentile(array, 90))}


def _score_batch(batch: dict, positions: list[int], truths: TruthBatch, setting: str, scores: SettingScores, models: tuple[LoadedGenerator, LoadedGenerator | None], config: EvalConfig, device: torch.device, features_model: InceptionFeatures | None) -> None:
    """Colour one uint8 batch under `setting` and file its samples' features and scores under their
    positions. Everything over whole images (features, PSNR, SSIM, CIELAB, colour distances) runs on
    the device."""
    draft, refine = models
    colors = batch["color"]
    hint = eval_hints(setting, colors, batch["__key__"], batch.get("hint"), config.seed)
    inputs = to_device({"color": colors, "line": batch["line"], "hint": hint, **({"palette": batch["palette"]} if "palette" in batch else {})}, device)
    on_device = {name: value for name, value in inputs.items() if isinstance(value, torch.Tensor) and name != "color"}
    colour = colour_batch(draft, refine, on_device, device, max(draft.size, refine.size if refine else 0))
    if colour.shape[-2:] != colors.shape[-2:]:
        colour = torch.nn.functional.interpolate(colour, size=tuple(colors.shape[-2:]), mode="bilinear", align_corners=False)
    coloured = (colour * 255).round().to(torch.uint8)
    features = features_model(coloured) if features_model is not None else None
    images = [ImageScores(p, s) for p, s in zip(psnr(coloured, truths.images).tolist(), ssim(coloured, truths.images).tolist())]
    lines, hints, outputs = _hwc(batch["line"])[..., 0], _hwc(hint), _hwc(coloured)
    output_lab = srgb_to_lab(coloured) if setting != "none" and truths.lab is not None else None
    for i, (position, image) in enumerate(zip(positions, images)):
        if features is not None:
            image.feature = features[i]
        if output_lab is not None:
            add_hint_scores(image, outputs[i], output_lab[i], truths.host[i], truths.lab[i], lines[i], hints[i], config)
        scores.images[position] = image
        if position < config.grid_samples:
            scores.grid[position] = GridRow(batch["__key__"][i], lines[i], hints[i], outputs[i], truths.host[i])


def truth_cache_path(config: EvalConfig, folder: Path, weights: Path, device: torch.device) -> Path:
    """Where the truths' features for this split, sample limit, weights file and device type are kept.

    The key hashes the split's shard sidecars and done-markers (every member's SHA-256), so re-made
    shards never reuse stale features; scoring several checkpoints on one split computes them once.
    """
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.parquet")) + sorted(folder.glob(f"*{STATS_SUFFIX}")):
        digest.update(path.name.encode() + path.read_bytes())
    with weights.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(json.dumps([config.limit, device.type]).encode())
    return DatasetLayout(config.root).reports_cache / f"{config.split}-truth-features-{digest.hexdigest()[:16]}.npy"


def run_eval(config: EvalConfig) -> tuple[dict, dict[str, list[GridRow]]]:
    """The report (a JSON-ready dict) and each setting's grid rows."""
    from train.device import resolve_device

    device = resolve_device(config.device)
    folder = DatasetLayout(config.root).shard_split(config.split)
    if config.split not in SPLITS:
        raise ValueError(f"--split {config.split!r}: pipe shard makes the splits {' and '.join(SPLITS)}")
    if not finished_shards(folder):
        raise FileNotFoundError(f"no finished shards in {folder}: run `pipe shard {config.root}` first (with --val > 0 for a val split)")
    positions = sample_positions(folder, config.limit)
    draft, refine = _models(config, device)
    reasons = _hintless_reasons(config, [m for m in (draft, refine) if m is not None])
    features_model, cached_truths, cache_path = None, None, None
    if config.fid:
        from train.networks.inception import inception_weights_in, load_fid_inception

        weights = require_weights("inception", config.inception_weights or inception_weights_in())
        features_model = InceptionFeatures(load_fid_inception(weights), device, config.batch_size)
        cache_path = truth_cache_path(config, folder, weights, device)
        cached_truths = np.load(cache_path) if cache_path.is_file() else None
    needs_palette = any("palette" in m.recipe.inputs for m in filter(None, (draft, refine)))
    images = ("color", "line", *(("hint",) if "shard" in config.settings else ()))
    loader = eval_loader(folder, positions, config.batch_size, config.workers, images, needs_palette)
    models = (draft, refine)
    scores = {setting: SettingScores() for setting in config.settings}
    truth_features: dict[int, np.ndarray] = {}
    failed: dict[int, Unscored] = {}
    hinted = "adherence" not in reasons and any(setting != "none" for setting in config.settings)
    with StageSession(config.root, f"eval-{config.report_name()}") as session, session.progress(f"scoring {config.split}", total=len(positions) * len(config.settings)) as bar:
        for batch in loader:
            failed.update((positions[record.key], record) for record in batch["unscored"])
            bar.advance(len(batch["unscored"]) * len(config.settings))
            if not batch["__key__"]:
                continue
            batch_positions = [positions[key] for key in batch["__key__"]]
            on_device = batch["color"].to(device)
            truths = TruthBatch(on_device, _hwc(batch["color"]), srgb_to_lab(on_device) if hinted else None)
            if features_model is not None and cached_truths is None:
                truth_features.update(zip(batch_positions, features_model(on_device)))
            for setting in config.settings:
                _score_batch(batch, batch_positions, truths, setting, scores[setting], models, config, device, features_model)
                bar.advance(len(batch_positions))
    scored = scores[config.settings[0]].images
    seen = len(scored)
    if not seen:
        first = next(iter(failed.values()), None)
        raise ValueError(f"none of the {len(positions)} samples of {folder} could be scored" + (f" (first: {first.key}, {first.reason}: {first.detail})" if first else ""))
    if not config.fid:
        reasons.update(dict.fromkeys(("fid", "kid"), "--no-fid"))
    elif seen < 2:
        reasons.update(dict.fromkeys(("fid", "kid"), f"FID and KID need at least 2 samples, {seen} scored"))
    if cached_truths is not None and len(cached_truths) != seen:
        raise ValueError(f"the cached truth features {cache_path} hold {len(cached_truths)} samples, not {seen}: delete the file and run again")
    truths = cached_truths if cached_truths is not None else (np.stack([truth_features[p] for p in sorted(truth_features)]) if truth_features else None)
    if cache_path is not None and cached_truths is None:
        buffer = io.BytesIO()
        np.save(buffer, truths)
        write_bytes_atomic(cache_path, buffer.getvalue())
    report = _report(config, draft, refine, scores, truths, seen, len(positions), unscored_samples(positions, scored.keys(), failed), reasons)
    report["config"]["truth_features"] = None if truths is None else ("cached" if cached_truths is not None else "computed")
    session.write_summary({key: report[key] for key in ("name", "samples", "split_samples", "unscored")})
    return report, {setting: s.grid_rows() for setting, s in scores.items()}


# Metrics scored only under hinted settings, and what the report says when no model takes hints.
HINT_SCORES = ("adherence", "containment")
NO_HINTS = "model takes no hints"


def _hintless_reasons(config: EvalConfig, models: list[LoadedGenerator]) -> dict[str, str]:
    """{metric: why it is not computed} for the hint scores when none of the models reads hints
    (their outputs, and so their scores, would be the `none` setting's); warns when a hinted setting is asked for."""
    note = hintless_note(models)
    if note is None:
        return {}
    hinted = [setting for setting in config.settings if setting != "none"]
    if hinted:
        console.print(f"[yellow]warning:[/] --hints {','.join(hinted)}: {note}: hint error and containment marked \"{NO_HINTS}\"", soft_wrap=True)
    return dict.fromkeys(HINT_SCORES, NO_HINTS)


def _checkpoint_info(path: Path, loaded: LoadedGenerator) -> dict:
    return {"path": str(path), "recipe": loaded.config["recipe"], "stage": loaded.config["stage"], "step": loaded.step, "size": loaded.size, "weights": loaded.weights}


def _report(config: EvalConfig, draft: LoadedGenerator, refine: LoadedGenerator | None, scores: dict[str, SettingScores], real: np.ndarray | None, samples: int,
            split_samples: int, unscored: list[Unscored], reasons: dict[str, str]) -> dict:
    """The report: `samples` scored of the `split_samples` within the limit, every other one named under
    `unscored`; each metric in `reasons` is null in every setting it applies to, with the reason under `not_computed`."""
    real_stats = gaussian_stats(real) if real is not None and "fid" not in reasons else None
    settings = {}
    for setting, setting_scores in scores.items():
        s = setting_scores.ordered()
        entry: dict = {"label": setting_label(setting), "samples": samples}
        not_computed = {metric: reason for metric, reason in reasons.items() if setting != "none" or metric not in HINT_SCORES}
        if real_stats is not None:
            fake = np.stack([image.feature for image in s])
            entry["fid"] = frechet_distance(real_stats, gaussian_stats(fake))
            kid = kernel_inception_distance(real, fake, config.kid_subsets, config.kid_subset_size, config.seed)
            entry["kid"] = {"mean": kid.mean, "std": kid.std, "subsets": kid.subsets, "subset_size": kid.subset_size}
        entry["psnr"] = _stats([image.psnr for image in s])
        entry["ssim"] = _stats([image.ssim for image in s])
        if setting != "none" and "adherence" not in not_computed:
            entry["adherence"] = _stats(np.concatenate([image.adherence for image in s]).tolist())
            # What the truth itself scores: the window mean blurs texture and edges, so this is the floor.
            entry["adherence"]["truth_mean"] = float(np.concatenate([image.adherence_floor for image in s]).mean()) if entry["adherence"]["count"] else None
            leaks = _stats([share for image in s for share in image.leak_shares])
            on_lines, absent = sum(image.hints_on_lines for image in s), sum(image.hints_absent for image in s)
            entry["containment"] = {**leaks, "score": (1.0 - leaks["mean"]) if leaks["count"] else None, "on_lines": on_lines, "absent": absent}
        if not_computed:
            entry.update(dict.fromkeys(not_computed), not_computed=not_computed)
        settings[setting] = entry
    return {
        "name": config.report_name(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "pipe_version": PIPE_VERSION,
        "samples": samples,
        "split_samples": split_samples,
        "unscored": {"count": len(unscored), "samples": [asdict(record) for record in unscored]},
        "feature_dim": int(real.shape[1]) if real is not None else None,
        "config": {
            "root": str(config.root), "split": config.split, "hints": list(config.settings),
            "weights": config.weights, "draft": _checkpoint_info(config.draft, draft), "refine": _checkpoint_info(config.refine, refine) if refine else None,
            "fid": config.fid, "kid_subsets": config.kid_subsets, "kid_subset_size": config.kid_subset_size, "limit": config.limit,
            "seed": config.seed, "window_radius": config.window_radius, "line_threshold": config.line_threshold,
            "colour_tolerance": config.colour_tolerance, "resize": "TensorFlow 1.x bilinear to 299, (x - 128) / 128",
        },
        "settings": settings,
    }
