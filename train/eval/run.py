"""Score trained checkpoints on a split of the shards: colour every sample under each hint setting,
collect Inception features and per-image scores, and reduce them to the report's numbers."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from extractors.weights import require_weights
from manifests.atomic import write_bytes_atomic
from pipeline import __version__
from pipeline.console import make_progress
from pipeline.shard.writer import STATS_SUFFIX
from train.colorize import colour_batch
from train.eval.hints import eval_hints, setting_label
from train.evaluate import LoadedGenerator, load_generator
from train.loader import LoaderConfig, make_loader, to_device
from train.metrics.frechet import KID_SUBSET_SIZE, KID_SUBSETS, frechet_distance, gaussian_stats, kernel_inception_distance
from train.metrics.cielab import srgb_to_lab
from train.metrics.hint_scores import COLOUR_TOLERANCE, LINE_THRESHOLD, WINDOW_RADIUS, containment_from_lab, hint_adherence
from train.metrics.image_quality import psnr, ssim
from train.metrics.inception_features import InceptionFeatures

REPORTS_DIR = "reports"
CACHE_DIR = ".cache"


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
    grid_samples: int = 8
    seed: int = 0
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
class SettingScores:
    """Everything gathered for one hint setting while the split streams by."""

    features: list[np.ndarray] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    adherence: list[np.ndarray] = field(default_factory=list)
    adherence_floor: list[np.ndarray] = field(default_factory=list)  # the truth's own hint error
    leak_shares: list[float] = field(default_factory=list)
    hints_on_lines: int = 0
    hints_absent: int = 0
    grid: list[GridRow] = field(default_factory=list)


def split_size(folder: Path) -> int:
    return sum(json.loads(p.read_text())["count"] for p in folder.glob(f"*{STATS_SUFFIX}"))


def _hwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).cpu().numpy()


@dataclass(frozen=True)
class TruthBatch:
    """One batch's truths as every hint setting scores against them: uint8 on the device, HWC on
    the host, and CIELAB on the device (only when a hinted setting needs it)."""

    images: torch.Tensor  # uint8 (B, 3, H, W) on the eval device
    host: np.ndarray
    lab: torch.Tensor | None


def add_hint_scores(scores: SettingScores, output: np.ndarray, output_lab: torch.Tensor, truth: np.ndarray, truth_lab: torch.Tensor, line: np.ndarray, hint: np.ndarray, config: EvalConfig) -> None:
    """Hint adherence (of the output, and of the truth as the floor) and colour containment of one
    image: output and truth uint8 H x W x 3, their CIELAB (3, H, W) on the device, line H x W, hint H x W x 4."""
    scores.adherence.append(hint_adherence(output, hint, config.window_radius))
    scores.adherence_floor.append(hint_adherence(truth, hint, config.window_radius))
    containment = containment_from_lab(output_lab, truth_lab, line, hint, config.line_threshold, config.colour_tolerance)
    scores.leak_shares += containment.leak_shares
    scores.hints_on_lines += containment.on_lines
    scores.hints_absent += containment.absent


def _models(config: EvalConfig, device: torch.device) -> tuple[LoadedGenerator, LoadedGenerator | None]:
    draft = load_generator(config.draft, device)
    refine = load_generator(config.refine, device) if config.refine is not None else None
    if draft.config["stage"] == "ldm":
        raise ValueError(f"{config.draft} is a Line Detection Model, not a colourizer: pass a draft stage's checkpoint")
    if "draft" in draft.recipe.inputs:
        raise ValueError(f"{config.draft} is a refinement stage ({draft.config['recipe']} {draft.config['stage']}): pass it as --refine, with a draft checkpoint as --draft")
    return draft, refine


def _stats(values: list[float]) -> dict:
    array = np.asarray(values, np.float64)
    if array.size == 0:
        return {"count": 0}
    return {"count": int(array.size), "mean": float(array.mean()), "std": float(array.std()), "median": float(np.median(array)), "p90": float(np.percentile(array, 90))}


def _score_batch(batch: dict, truths: TruthBatch, setting: str, scores: SettingScores, models: tuple[LoadedGenerator, LoadedGenerator | None], config: EvalConfig, device: torch.device, features_model: InceptionFeatures | None) -> None:
    """Colour one uint8 batch under `setting` and add its features and scores. Everything over whole
    images (features, PSNR, SSIM, CIELAB, colour distances) runs on the device."""
    draft, refine = models
    colors = batch["color"]
    hint = eval_hints(setting, colors, batch["__key__"], batch.get("hint"), config.seed)
    inputs = to_device({"color": colors, "line": batch["line"], "hint": hint, **({"palette": batch["palette"]} if "palette" in batch else {})}, device)
    on_device = {name: value for name, value in inputs.items() if isinstance(value, torch.Tensor) and name != "color"}
    colour = colour_batch(draft, refine, on_device, device, max(draft.size, refine.size if refine else 0))
    if colour.shape[-2:] != colors.shape[-2:]:
        colour = torch.nn.functional.interpolate(colour, size=tuple(colors.shape[-2:]), mode="bilinear", align_corners=False)
    coloured = (colour * 255).round().to(torch.uint8)
    if features_model is not None:
        scores.features.append(features_model(coloured))
    scores.psnr += psnr(coloured, truths.images).tolist()
    scores.ssim += ssim(coloured, truths.images).tolist()
    lines, hints, outputs = _hwc(batch["line"])[..., 0], _hwc(hint), _hwc(coloured)
    if setting != "none":
        output_lab = srgb_to_lab(coloured)
        for i in range(len(outputs)):
            add_hint_scores(scores, outputs[i], output_lab[i], truths.host[i], truths.lab[i], lines[i], hints[i], config)
    for key, line, image_hint, output, truth in zip(batch["__key__"], lines, hints, outputs, truths.host):
        if len(scores.grid) < config.grid_samples:
            scores.grid.append(GridRow(key, line, image_hint, output, truth))


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
    return config.root / REPORTS_DIR / CACHE_DIR / f"{config.split}-truth-features-{digest.hexdigest()[:16]}.npy"


def run_eval(config: EvalConfig) -> tuple[dict, dict[str, list[GridRow]]]:
    """The report (a JSON-ready dict) and each setting's grid rows."""
    from train.trainer import resolve_device

    device = resolve_device(config.device)
    folder = config.root / "shards" / config.split
    total = split_size(folder)
    if total == 0:
        raise FileNotFoundError(f"no finished shards in {folder}: run `pipe shard {config.root}` first (with --val > 0 for a val split)")
    draft, refine = _models(config, device)
    features_model, cached_truths, cache_path = None, None, None
    if config.fid:
        from train.networks.inception import inception_weights_in, load_fid_inception

        weights = require_weights("inception", config.inception_weights or inception_weights_in())
        features_model = InceptionFeatures(load_fid_inception(weights), device, config.batch_size)
        cache_path = truth_cache_path(config, folder, weights, device)
        cached_truths = np.load(cache_path) if cache_path.is_file() else None
    needs_palette = any("palette" in m.recipe.inputs for m in filter(None, (draft, refine)))
    images = ("color", "line", *(("hint",) if "shard" in config.settings else ()))
    loader = make_loader(LoaderConfig(shards=(str(folder),), batch_size=config.batch_size, workers=0, shuffle_buffer=0, shuffle_shards=False, images=images, with_palette=needs_palette))
    models = (draft, refine)
    wanted = min(total, config.limit) if config.limit else total
    scores = {setting: SettingScores() for setting in config.settings}
    truth_features: list[np.ndarray] = []
    hinted = any(setting != "none" for setting in config.settings)
    seen = 0
    with make_progress() as progress:
        task = progress.add_task(f"scoring {config.split}", total=wanted * len(config.settings))
        for batch in loader:
            if seen >= wanted:
                break
            keep = min(len(batch["__key__"]), wanted - seen)
            batch = {name: value[:keep] for name, value in batch.items()}
            on_device = batch["color"].to(device)
            truths = TruthBatch(on_device, _hwc(batch["color"]), srgb_to_lab(on_device) if hinted else None)
            if features_model is not None and cached_truths is None:
                truth_features.append(features_model(on_device))
            for setting in config.settings:
                _score_batch(batch, truths, setting, scores[setting], models, config, device, features_model)
                progress.advance(task, keep)
            seen += keep
    if seen < 2:
        raise ValueError(f"{folder} has {seen} sample(s); FID and KID need at least 2")
    truths = cached_truths if cached_truths is not None else (np.concatenate(truth_features) if truth_features else None)
    if cache_path is not None and cached_truths is None:
        buffer = io.BytesIO()
        np.save(buffer, truths)
        write_bytes_atomic(cache_path, buffer.getvalue())
    report = _report(config, draft, refine, scores, truths, seen)
    report["config"]["truth_features"] = None if truths is None else ("cached" if cached_truths is not None else "computed")
    return report, {setting: s.grid for setting, s in scores.items()}


def _checkpoint_info(path: Path, loaded: LoadedGenerator) -> dict:
    return {"path": str(path), "recipe": loaded.config["recipe"], "stage": loaded.config["stage"], "step": loaded.step, "size": loaded.size}


def _report(config: EvalConfig, draft: LoadedGenerator, refine: LoadedGenerator | None, scores: dict[str, SettingScores], real: np.ndarray | None, samples: int) -> dict:
    real_stats = gaussian_stats(real) if real is not None else None
    settings = {}
    for setting, s in scores.items():
        entry: dict = {"label": setting_label(setting), "samples": samples}
        if real_stats is not None:
            fake = np.concatenate(s.features)
            entry["fid"] = frechet_distance(real_stats, gaussian_stats(fake))
            kid = kernel_inception_distance(real, fake, config.kid_subsets, config.kid_subset_size, config.seed)
            entry["kid"] = {"mean": kid.mean, "std": kid.std, "subsets": kid.subsets, "subset_size": kid.subset_size}
        entry["psnr"] = _stats(s.psnr)
        entry["ssim"] = _stats(s.ssim)
        if setting != "none":
            entry["adherence"] = _stats(np.concatenate(s.adherence).tolist() if s.adherence else [])
            # What the truth itself scores: the window mean blurs texture and edges, so this is the floor.
            entry["adherence"]["truth_mean"] = float(np.concatenate(s.adherence_floor).mean()) if entry["adherence"]["count"] else None
            leaks = _stats(s.leak_shares)
            entry["containment"] = {**leaks, "score": (1.0 - leaks["mean"]) if leaks["count"] else None, "on_lines": s.hints_on_lines, "absent": s.hints_absent}
        settings[setting] = entry
    return {
        "name": config.report_name(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "pipe_version": __version__,
        "samples": samples,
        "feature_dim": int(real.shape[1]) if real is not None else None,
        "config": {
            "root": str(config.root), "split": config.split, "hints": list(config.settings),
            "draft": _checkpoint_info(config.draft, draft), "refine": _checkpoint_info(config.refine, refine) if refine else None,
            "fid": config.fid, "kid_subsets": config.kid_subsets, "kid_subset_size": config.kid_subset_size, "limit": config.limit,
            "seed": config.seed, "window_radius": config.window_radius, "line_threshold": config.line_threshold,
            "colour_tolerance": config.colour_tolerance, "resize": "TensorFlow 1.x bilinear to 299, (x - 128) / 128",
        },
        "settings": settings,
    }
