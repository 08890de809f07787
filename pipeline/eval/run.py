"""Score trained checkpoints on a split of the shards: colour every sample under each hint setting from
each line source, collect Inception features and per-image scores, and reduce them to the report's numbers.

Each loader batch is coloured once per (repeat, hint setting, line source). The hints of a (repeat,
setting) are drawn once per sample and shared by every line source, so the sources differ in their
lines only; the truths (and their Inception features) are the same for all. A line source's scores
cover the samples that have its lines; its FID and KID compare against the truths of those samples.
With --repeats N every entry is the mean of the N repeats' entries, with their spread beside it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from collections.abc import Collection
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
from pipeline.eval.fid_folders import FEATURES_VERSION
from pipeline.eval.hints import HISTOGRAM_GUESS, eval_hints, guess_histogram, hintless_note, setting_label
from pipeline.eval.lines import SHARD_LINES, parse_line_sources, root_line_paths, source_label
from train.inference import LoadedGenerator, load_stage
from pipeline.eval.samples import AttachRootLines, Unscored, eval_loader, sample_positions, unscored_samples
from train.loader import to_device
from train.metrics.frechet import KID_SUBSET_SIZE, KID_SUBSETS, frechet_distance, gaussian_stats, kernel_inception_distance
from train.metrics.cielab import srgb_to_lab
from train.metrics.hint_scores import COLOUR_TOLERANCE, LINE_THRESHOLD, WINDOW_RADIUS, containment_from_lab, hint_adherence
from train.metrics.image_quality import psnr, ssim
from train.metrics.fid_preprocess import DEFAULT_FID_IMPL, FID_IMPLS, check_impl
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
    fid_impl: str = DEFAULT_FID_IMPL  # whose preprocessing the Inception features follow (train.metrics.fid_preprocess)
    kid_subsets: int = KID_SUBSETS
    kid_subset_size: int = KID_SUBSET_SIZE
    batch_size: int = 16
    device: str = "auto"
    limit: int | None = None  # score only the first N samples of the split
    workers: int = field(default_factory=lambda: min(4, default_workers()))  # loader processes decoding the shards (0: in this process)
    grid_samples: int = 8
    seed: int = 0
    weights: str = "auto"  # each checkpoint's EMA or raw generator (train.inference.chosen_weights)
    lines: tuple[str, ...] = (SHARD_LINES,)  # line sources, each scored side by side (pipeline.eval.lines)
    repeats: int = 1  # hint draws per setting; N > 1 reports mean and spread
    reference: Path | None = None  # histogram-guess: guess from this image's colours (default: the dataset histogram)
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

    def subset(self, indices: list[int], size: int) -> TruthBatch:
        """The truths of the samples at `indices` (this batch itself when they are all `size` of them)."""
        if len(indices) == size:
            return self
        rows = torch.as_tensor(indices, dtype=torch.long, device=self.images.device)
        return TruthBatch(self.images[rows], self.host[indices], self.lab[rows] if self.lab is not None else None)


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


@dataclass(frozen=True)
class SourceBatch:
    """The samples of one loader batch that one line source scores: their indices in the batch and
    their line art, uint8 (n, 1, H, W) on the host."""

    indices: list[int]
    lines: torch.Tensor | None

    def take(self, tensor: torch.Tensor, size: int) -> torch.Tensor:
        """`tensor`'s rows for these samples (the tensor itself when they are the whole batch)."""
        if len(self.indices) == size:
            return tensor
        return tensor[torch.as_tensor(self.indices, dtype=torch.long, device=tensor.device)]


def source_batch(source: str, batch: dict, positions: list[int], failed: dict[int, Unscored]) -> SourceBatch:
    """Which samples of `batch` have `source`'s lines (the shard's own, or the dataset root's as the
    loader read them); the others are filed under `failed` with the reason."""
    if source == SHARD_LINES:
        return SourceBatch(list(range(len(positions))), batch["line"])
    indices, lines = [], []
    for index, (key, found) in enumerate(zip(batch["__key__"], batch["root_lines"])):
        line = found[source]
        if isinstance(line, Unscored):
            failed[positions[index]] = line
            continue
        indices.append(index)
        lines.append(torch.as_tensor(line))  # the loader's workers hand arrays over as tensors
    return SourceBatch(indices, torch.stack(lines) if lines else None)


def _score_batch(keys: list[str], positions: list[int], colors: torch.Tensor, lines: torch.Tensor, hint: torch.Tensor, palette: torch.Tensor | None,
                 truths: TruthBatch, setting: str, scores: SettingScores, models: tuple[LoadedGenerator, LoadedGenerator | None], config: EvalConfig,
                 device: torch.device, features_model: InceptionFeatures | None, grid: Collection[int]) -> None:
    """Colour one uint8 batch (its line art and hints given) and file its samples' features and scores
    under their positions (and grid rows for those in `grid`). Everything over whole images (features, PSNR, SSIM, CIELAB, colour
    distances) runs on the device."""
    draft, refine = models
    inputs = to_device({"color": colors, "line": lines, "hint": hint, **({"palette": palette} if palette is not None else {})}, device)
    on_device = {name: value for name, value in inputs.items() if isinstance(value, torch.Tensor) and name != "color"}
    colour = colour_batch(draft, refine, on_device, device, max(draft.size, refine.size if refine else 0))
    if colour.shape[-2:] != colors.shape[-2:]:
        colour = torch.nn.functional.interpolate(colour, size=tuple(colors.shape[-2:]), mode="bilinear", align_corners=False)
    coloured = (colour * 255).round().to(torch.uint8)
    features = features_model(coloured) if features_model is not None else None
    images = [ImageScores(p, s) for p, s in zip(psnr(coloured, truths.images).tolist(), ssim(coloured, truths.images).tolist())]
    line_pixels, hints, outputs = _hwc(lines)[..., 0], _hwc(hint), _hwc(coloured)
    output_lab = srgb_to_lab(coloured) if setting != "none" and truths.lab is not None else None
    for i, (position, image) in enumerate(zip(positions, images)):
        if features is not None:
            image.feature = features[i]
        if output_lab is not None:
            add_hint_scores(image, outputs[i], output_lab[i], truths.host[i], truths.lab[i], line_pixels[i], hints[i], config)
        scores.images[position] = image
        if position in grid:
            scores.grid[position] = GridRow(keys[i], line_pixels[i], hints[i], outputs[i], truths.host[i])


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
    # The implementation and the feature code's version too: features of another preprocessing, or
    # of an older one (before the layout fix), are not these.
    digest.update(json.dumps([config.limit, device.type, config.fid_impl, FEATURES_VERSION]).encode())
    return DatasetLayout(config.root).reports_cache / f"{config.split}-truth-features-{digest.hexdigest()[:16]}.npy"


def _check(config: EvalConfig) -> None:
    """The options' one-line errors, before anything is loaded."""
    check_impl(config.fid_impl)
    if config.split not in SPLITS:
        raise ValueError(f"--split {config.split!r}: pipe shard makes the splits {' and '.join(SPLITS)}")
    if config.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {config.repeats}")
    parse_line_sources(",".join(config.lines))  # unknown names, as the command line would say
    if config.reference is not None and HISTOGRAM_GUESS not in config.settings:
        raise ValueError(f"--reference is the image --hints {HISTOGRAM_GUESS} guesses from: add {HISTOGRAM_GUESS} to --hints, or leave --reference out")


def grid_positions(source: str, positions: dict[str, int], root_paths: dict[str, dict[str, str]], count: int) -> set[int]:
    """The first `count` positions of the split that have `source`'s lines: the samples its grids show."""
    ordered = sorted(positions.items(), key=lambda item: item[1])
    if source != SHARD_LINES:
        ordered = [(key, position) for key, position in ordered if key in root_paths[source]]
    return {position for _, position in ordered[:count]}


def run_eval(config: EvalConfig) -> tuple[dict, dict[str, dict[str, list[GridRow]]]]:
    """The report (a JSON-ready dict) and the grid rows of each line source and hint setting."""
    from train.device import resolve_device

    _check(config)
    device = resolve_device(config.device)
    folder = DatasetLayout(config.root).shard_split(config.split)
    if not finished_shards(folder):
        raise FileNotFoundError(f"no finished shards in {folder}: run `pipe shard {config.root}` first (with --val > 0 for a val split)")
    positions = sample_positions(folder, config.limit)
    root_paths = root_line_paths(config.root, config.lines, set(positions))
    histogram, histogram_origin = guess_histogram(config.root, config.reference) if HISTOGRAM_GUESS in config.settings else (None, None)
    draft, refine = _models(config, device)
    reasons = _hintless_reasons(config, [m for m in (draft, refine) if m is not None])
    features_model, cached_truths, cache_path = None, None, None
    if config.fid:
        from train.networks.inception import inception_weights_in, load_fid_inception

        weights = config.inception_weights or inception_weights_in()
        if config.inception_weights is None and not weights.is_file():
            # The default file is absent: every other score still runs; an explicit one stays an error.
            from rich.markup import escape

            reasons.update(dict.fromkeys(("fid", "kid"), missing_inception_reason(weights)))
            console.print(f"[yellow]warning:[/] FID, KID and C-FID not computed: {escape(missing_inception_reason(weights))} (looked in {escape(str(weights.parent))})",
                          soft_wrap=True, highlight=False)
        else:
            weights = require_weights("inception", weights)
            features_model = InceptionFeatures(load_fid_inception(weights), device, config.batch_size, config.fid_impl)
            cache_path = truth_cache_path(config, folder, weights, device)
            cached_truths = np.load(cache_path) if cache_path.is_file() else None
    needs_palette = any("palette" in m.recipe.inputs for m in filter(None, (draft, refine)))
    images = ("color", *(("line",) if SHARD_LINES in config.lines else ()), *(("hint",) if "shard" in config.settings else ()))
    attach = AttachRootLines(config.root, root_paths) if root_paths else None
    loader = eval_loader(folder, positions, config.batch_size, config.workers, images, needs_palette, attach)
    models = (draft, refine)
    runs = [(source, repeat, setting) for source in config.lines for repeat in range(config.repeats) for setting in config.settings]
    scores = {run: SettingScores() for run in runs}
    grids = {source: grid_positions(source, positions, root_paths, config.grid_samples) for source in config.lines}
    truth_features: dict[int, np.ndarray] = {}
    decoded: set[int] = set()
    failed: dict[int, Unscored] = {}
    source_failed: dict[str, dict[int, Unscored]] = {source: {} for source in config.lines}
    hinted = "adherence" not in reasons and any(setting != "none" for setting in config.settings)
    with StageSession(config.root, f"eval-{config.report_name()}") as session, session.progress(f"scoring {config.split}", total=len(positions) * len(runs)) as bar:
        for batch in loader:
            failed.update((positions[record.key], record) for record in batch["unscored"])
            bar.advance(len(batch["unscored"]) * len(runs))
            if not batch["__key__"]:
                continue
            keys = batch["__key__"]
            batch_positions = [positions[key] for key in keys]
            decoded.update(batch_positions)
            on_device = batch["color"].to(device)
            truths = TruthBatch(on_device, _hwc(batch["color"]), srgb_to_lab(on_device) if hinted else None)
            if features_model is not None and cached_truths is None:
                truth_features.update(zip(batch_positions, features_model(on_device)))
            sources = {source: source_batch(source, batch, batch_positions, source_failed[source]) for source in config.lines}
            for repeat in range(config.repeats):
                for setting in config.settings:
                    # One draw of the hints per sample, shared by every line source: the sources differ in their lines only.
                    hint = eval_hints(setting, batch["color"], keys, batch.get("hint"), config.seed, repeat, histogram)
                    for source, chosen in sources.items():
                        if chosen.indices:
                            size = len(keys)
                            _score_batch([keys[i] for i in chosen.indices], [batch_positions[i] for i in chosen.indices], chosen.take(batch["color"], size),
                                         chosen.lines, chosen.take(hint, size), chosen.take(batch["palette"], size) if "palette" in batch else None,
                                         truths.subset(chosen.indices, size), setting, scores[(source, repeat, setting)], models, config, device,
                                         features_model, grids[source] if repeat == 0 else ())
                        bar.advance(len(keys))
    seen = len(decoded)
    if not seen:
        first = next(iter(failed.values()), None)
        raise ValueError(f"none of the {len(positions)} samples of {folder} could be scored" + (f" (first: {first.key}, {first.reason}: {first.detail})" if first else ""))
    if not config.fid:
        reasons.update(dict.fromkeys(("fid", "kid"), "--no-fid"))
    if cached_truths is not None and len(cached_truths) != seen:
        raise ValueError(f"the cached truth features {cache_path} hold {len(cached_truths)} samples, not {seen}: delete the file and run again")
    truths = cached_truths if cached_truths is not None else (np.stack([truth_features[p] for p in sorted(truth_features)]) if truth_features else None)
    if cache_path is not None and cached_truths is None:
        buffer = io.BytesIO()
        np.save(buffer, truths)
        write_bytes_atomic(cache_path, buffer.getvalue())
    truth_rows = {position: row for row, position in enumerate(sorted(decoded))}
    lines_report = {}
    for source in config.lines:
        scored = sorted(scores[(source, 0, config.settings[0])].images)
        real = truths[[truth_rows[p] for p in scored]] if truths is not None and scored else None
        per_repeat = [{setting: scores[(source, repeat, setting)] for setting in config.settings} for repeat in range(config.repeats)]
        lines_report[source] = _source_report(config, source, per_repeat, real, len(scored), unscored_samples_of(source_failed[source]), reasons)
    unscored = unscored_samples(positions, decoded, failed)
    report = _report(config, draft, refine, lines_report, truths, seen, len(positions), unscored, histogram_origin)
    report["config"]["truth_features"] = None if truths is None else ("cached" if cached_truths is not None else "computed")
    empty = [source for source, entry in lines_report.items() if not entry["samples"]]
    if len(empty) == len(config.lines):
        details = "; ".join(f"{source}: {entry['unscored']['count']} {', '.join(sorted({s['reason'] for s in entry['unscored']['samples']}))}" for source, entry in lines_report.items())
        raise ValueError(f"none of the {seen} samples of {folder} has lines of {', '.join(config.lines)} ({details})")
    for source in empty:
        console.print(f"[yellow]warning:[/] none of the {seen} samples has {source} lines: its column is empty", soft_wrap=True)
    session.write_summary({key: report[key] for key in ("name", "samples", "split_samples", "unscored")})
    return report, {source: {setting: scores[(source, 0, setting)].grid_rows() for setting in config.settings} for source in config.lines}


def unscored_samples_of(failed: dict[int, Unscored]) -> list[Unscored]:
    return [failed[position] for position in sorted(failed)]


def missing_inception_reason(weights: Path) -> str:
    """What the report says for FID, KID and C-FID when the default Inception file is absent."""
    return f"{weights.name} missing, `pipe weights fetch inception`"


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


# The headline number of each metric, by its path in a setting's entry: what --repeats lists per repeat.
HEADLINES = {"fid": ("fid",), "kid": ("kid", "mean"), "psnr": ("psnr", "mean"), "ssim": ("ssim", "mean"),
             "adherence": ("adherence", "mean"), "containment": ("containment", "score")}
# Entry fields that are the same in every repeat, copied rather than averaged.
FIXED_FIELDS = ("label", "samples", "not_computed")


def _setting_entry(config: EvalConfig, setting: str, images: list[ImageScores], real: np.ndarray | None, real_stats, reasons: dict[str, str]) -> dict:
    """One hint setting's scores over `images` (one repeat, one line source); each metric in `reasons`
    is null, with the reason under `not_computed`, wherever it applies."""
    entry: dict = {"label": setting_label(setting), "samples": len(images)}
    not_computed = {metric: reason for metric, reason in reasons.items() if setting != "none" or metric not in HINT_SCORES}
    if real_stats is not None and "fid" not in not_computed:
        fake = np.stack([image.feature for image in images])
        entry["fid"] = frechet_distance(real_stats, gaussian_stats(fake))
        kid = kernel_inception_distance(real, fake, config.kid_subsets, config.kid_subset_size, config.seed)
        entry["kid"] = {"mean": kid.mean, "std": kid.std, "subsets": kid.subsets, "subset_size": kid.subset_size}
    if "psnr" not in not_computed:
        entry["psnr"] = _stats([image.psnr for image in images])
        entry["ssim"] = _stats([image.ssim for image in images])
    if setting != "none" and "adherence" not in not_computed:
        entry["adherence"] = _stats(np.concatenate([image.adherence for image in images]).tolist())
        # What the truth itself scores: the window mean blurs texture and edges, so this is the floor.
        entry["adherence"]["truth_mean"] = float(np.concatenate([image.adherence_floor for image in images]).mean()) if entry["adherence"]["count"] else None
        leaks = _stats([share for image in images for share in image.leak_shares])
        on_lines, absent = sum(image.hints_on_lines for image in images), sum(image.hints_absent for image in images)
        entry["containment"] = {**leaks, "score": (1.0 - leaks["mean"]) if leaks["count"] else None, "on_lines": on_lines, "absent": absent}
    if not_computed:
        entry.update(dict.fromkeys(not_computed), not_computed=not_computed)
    return entry


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _mean_tree(trees: list):
    """Every number of same-shaped entries averaged over them (a count that is equal in all stays an
    int); a number missing (null) in any of them is null."""
    first = trees[0]
    if isinstance(first, dict):
        return {key: (first[key] if key in FIXED_FIELDS else _mean_tree([tree.get(key) if isinstance(tree, dict) else None for tree in trees])) for key in first}
    if _is_number(first) and all(_is_number(tree) for tree in trees):
        if all(isinstance(tree, int) for tree in trees) and len(set(trees)) == 1:
            return first
        return float(np.mean(trees))
    return None if _is_number(first) else first


def _spread_tree(trees: list):
    """The sample standard deviation (ddof 1) over the entries of every number they all have; None where one lacks it."""
    first = trees[0]
    if isinstance(first, dict):
        out = {}
        for key in first:
            if key in FIXED_FIELDS:
                continue
            value = _spread_tree([tree.get(key) if isinstance(tree, dict) else None for tree in trees])
            if value is not None and value != {}:
                out[key] = value
        return out
    if _is_number(first) and all(_is_number(tree) for tree in trees):
        return float(np.std(np.asarray(trees, np.float64), ddof=1))
    return None


def combine_repeats(entries: list[dict]) -> dict:
    """One setting's entries of N repeats -> their mean, with `repeats` N, `spread` (each number's
    sample standard deviation over the repeats, at the same path) and `per_repeat` (the headline
    numbers of each repeat). One entry is returned as it is."""
    if len(entries) == 1:
        return entries[0]
    combined = _mean_tree(entries)
    combined["repeats"] = len(entries)
    combined["spread"] = _spread_tree(entries)
    combined["per_repeat"] = {name: [lookup(entry, path) for entry in entries] for name, path in HEADLINES.items() if any(lookup(entry, path) is not None for entry in entries)}
    return combined


def lookup(entry: dict, path: tuple[str, ...]):
    for part in path:
        if not isinstance(entry, dict) or entry.get(part) is None:
            return None
        entry = entry[part]
    return entry


def _source_report(config: EvalConfig, source: str, per_repeat: list[dict[str, SettingScores]], real: np.ndarray | None, samples: int,
                   unscored: list[Unscored], reasons: dict[str, str]) -> dict:
    """One line source's section: `samples` scored (the split's decoded samples less its `unscored`,
    e.g. `no_lines`), and each hint setting's entry, averaged over the repeats."""
    reasons = dict(reasons)
    if samples == 0:
        reasons.update(dict.fromkeys(("fid", "kid", "psnr", "ssim", *HINT_SCORES), f"no sample has {source} lines"))
    elif "fid" not in reasons and samples < 2:
        reasons.update(dict.fromkeys(("fid", "kid"), f"FID and KID need at least 2 samples, {samples} scored"))
    real_stats = gaussian_stats(real) if real is not None and "fid" not in reasons else None
    settings = {setting: combine_repeats([_setting_entry(config, setting, repeat[setting].ordered(), real, real_stats, reasons) for repeat in per_repeat])
                for setting in config.settings}
    return {"label": source_label(source), "samples": samples, "unscored": {"count": len(unscored), "samples": [asdict(record) for record in unscored]}, "settings": settings}


def _report(config: EvalConfig, draft: LoadedGenerator, refine: LoadedGenerator | None, lines: dict[str, dict], real: np.ndarray | None, samples: int,
            split_samples: int, unscored: list[Unscored], histogram_origin: str | None) -> dict:
    """The report: `samples` decoded of the `split_samples` within the limit, every other one named under
    `unscored`; each line source's scores under `lines` (its own `samples` and `unscored`, such as
    `no_lines`) and, for readers of single-source reports, the first source's settings as `settings`."""
    first = lines[config.lines[0]]
    return {
        "name": config.report_name(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "pipe_version": PIPE_VERSION,
        "samples": samples,
        "split_samples": split_samples,
        "unscored": {"count": len(unscored), "samples": [asdict(record) for record in unscored]},
        "feature_dim": int(real.shape[1]) if real is not None else None,
        "repeats": config.repeats,
        "lines": lines,
        "settings": first["settings"],
        "config": {
            "root": str(config.root), "split": config.split, "hints": list(config.settings), "lines": list(config.lines), "repeats": config.repeats,
            "weights": config.weights, "draft": _checkpoint_info(config.draft, draft), "refine": _checkpoint_info(config.refine, refine) if refine else None,
            "fid": config.fid, "kid_subsets": config.kid_subsets, "kid_subset_size": config.kid_subset_size, "limit": config.limit,
            "seed": config.seed, "window_radius": config.window_radius, "line_threshold": config.line_threshold,
            "colour_tolerance": config.colour_tolerance, "fid_impl": config.fid_impl, "resize": FID_IMPLS[config.fid_impl],
            "guess_histogram": histogram_origin,
        },
    }
