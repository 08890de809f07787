"""What the synthesis schemes share: the per-sample draw input, dataset context, and tensor helpers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from extractors.ops import check_uint8_rgb

# Hints are RGBA uint8: colour in RGB, where-given in alpha (255 given, 0 not).
HINT_CHANNELS = 4
# Colour quantization shared by the palette and histogram hints: 8 levels per channel, 512 bins.
HISTOGRAM_LEVELS = 8


@dataclass(frozen=True)
class DrawInput:
    """What a draw may look at for one sample: its key and its colour image (uint8 (3, H, W), any device)."""

    key: str
    image: torch.Tensor

    @property
    def height(self) -> int:
        return int(self.image.shape[-2])

    @property
    def width(self) -> int:
        return int(self.image.shape[-1])


class DonorKeys(Sequence[str]):
    """The keys paste may cut from, in their order, with O(1) `index` and `in`: a tuple's are O(N),
    and a shard draws donors for every sample (quadratic over a large split)."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys = tuple(keys)
        self._positions = {key: position for position, key in enumerate(self._keys)}
        if len(self._positions) != len(self._keys):
            raise ValueError("donor keys must be distinct")

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, position):  # type: ignore[override]
        return self._keys[position]

    def __contains__(self, key: object) -> bool:
        return key in self._positions

    def index(self, key: str, *_: int) -> int:  # type: ignore[override]
        try:
            return self._positions[key]
        except KeyError:
            raise ValueError(f"{key!r} is not a donor key") from None


@dataclass(frozen=True)
class SynthContext:
    """Dataset-wide inputs to the draws.

    `dataset_histogram`: the 512-bin colour histogram of the dataset (probabilities), for the
    histogram hint. `donor_keys`: keys whose images the paste artifact may cut rectangles from.
    `hint_points`: (N, 2) int (y, x) of the sample's hint pixels, when the draft errors go near the
    hints (`pipe shard --artifacts-near-hints`; Xu's thesis sec. 5.2.2: a user corrects where the draft
    is wrong); None places them uniformly.
    """

    dataset_histogram: np.ndarray | None = None
    donor_keys: Sequence[str] = field(default_factory=tuple)
    hint_points: np.ndarray | None = None

    def near_hint(self, rng: np.random.Generator, h: int, w: int, height: int, width: int) -> list[int] | None:
        """Top-left [y, x] of an h x w box centred on a hint pixel drawn uniformly (clipped to the
        image), or None when there are no hint points to aim at."""
        if self.hint_points is None or not len(self.hint_points):
            return None
        y, x = (int(v) for v in self.hint_points[int(rng.integers(len(self.hint_points)))])
        return [min(max(y - h // 2, 0), height - h), min(max(x - w // 2, 0), width - w)]


def parse_subset(text: str, order: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """A comma-separated choice among `order` ("none" or nothing for none): (the names chosen, in
    `order`'s order; the unknown names, sorted), for the caller to refuse with its own words."""
    names = {name.strip() for name in text.split(",") if name.strip()} - {"none"}
    return tuple(name for name in order if name in names), sorted(names - set(order))


def check_images(images: torch.Tensor, params: list[dict]) -> None:
    check_uint8_rgb(images)
    if len(params) != images.shape[0]:
        raise ValueError(f"need one parameter dict per image: {images.shape[0]} images, {len(params)} dicts")


def empty_hints(images: torch.Tensor) -> torch.Tensor:
    batch, _, height, width = images.shape
    return torch.zeros((batch, HINT_CHANNELS, height, width), dtype=torch.uint8, device=images.device)


def paint_pixels(hints: torch.Tensor, images: torch.Tensor, index: int, yx: list[list[int]]) -> None:
    """Copy the colour of the listed pixels of image `index` into its hint and mark them given."""
    if not yx:
        return
    coords = torch.as_tensor(yx, dtype=torch.long, device=images.device)
    ys, xs = coords[:, 0], coords[:, 1]
    hints[index, :3, ys, xs] = images[index, :, ys, xs]
    hints[index, 3, ys, xs] = 255


def apply_pixel_hints(images: torch.Tensor, params: list[dict]) -> torch.Tensor:
    """RGBA hints of the schemes whose parameters list single pixels under "yx" (points, cfid)."""
    check_images(images, params)
    hints = empty_hints(images)
    for index, sample in enumerate(params):
        paint_pixels(hints, images, index, sample["yx"])
    return hints


def paint_box(hints: torch.Tensor, index: int, box: list[int], color: list[int] | torch.Tensor) -> None:
    """Fill box [y0, x0, y1, x1) of hint `index` with `color` and mark it given."""
    y0, x0, y1, x1 = box
    value = torch.as_tensor(color, dtype=torch.uint8, device=hints.device).view(3, 1, 1)
    hints[index, :3, y0:y1, x0:x1] = value
    hints[index, 3, y0:y1, x0:x1] = 255


def quantized_bins(images: torch.Tensor, levels: int = HISTOGRAM_LEVELS) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> int64 (B, H, W) bin index r*L*L + g*L + b of each pixel's quantized colour."""
    step = 256 // levels
    q = images.to(torch.int64) // step
    return (q[:, 0] * levels + q[:, 1]) * levels + q[:, 2]


def bin_color(index: int, levels: int = HISTOGRAM_LEVELS) -> list[int]:
    """The RGB centre of quantized bin `index`."""
    step = 256 // levels
    r, rest = divmod(int(index), levels * levels)
    g, b = divmod(rest, levels)
    return [c * step + step // 2 for c in (r, g, b)]


def color_histogram(images: torch.Tensor, levels: int = HISTOGRAM_LEVELS) -> torch.Tensor:
    """Per-image counts of the quantized colours: int64 (B, levels**3)."""
    bins = quantized_bins(images, levels).flatten(1)
    counts = torch.zeros((images.shape[0], levels**3), dtype=torch.int64, device=images.device)
    return counts.scatter_add_(1, bins, torch.ones_like(bins))


def uniform_box(rng: np.random.Generator, height: int, width: int, size: int) -> list[int]:
    """A size x size box [y0, x0, y1, x1) placed uniformly inside the image (cropped if the image is smaller)."""
    size_y, size_x = min(size, height), min(size, width)
    y0 = int(rng.integers(0, height - size_y + 1))
    x0 = int(rng.integers(0, width - size_x + 1))
    return [y0, x0, y0 + size_y, x0 + size_x]


def gaussian_kernel(ksize: int, sigma: float, device: torch.device) -> torch.Tensor:
    """Normalized 1-D Gaussian of `ksize` taps (float32) on `device`."""
    offsets = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2
    taps = torch.exp(-(offsets**2) / (2 * sigma * sigma))
    return (taps / taps.sum()).to(torch.float32).to(device)


def opencv_sigma_for_ksize(ksize: int) -> float:
    """The sigma cv2.GaussianBlur uses for a given kernel size when sigma is 0."""
    return 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8


def blur_separable(images: torch.Tensor, ksize: int, sigma: float) -> torch.Tensor:
    """Float (B, C, H, W) blurred by a ksize x ksize Gaussian, reflect-101 border (as OpenCV's default).

    The kernel shrinks to the largest odd size the image allows, so small images still work.
    """
    limit = 2 * min(images.shape[-2:]) - 1
    ksize = max(1, min(ksize, limit if limit % 2 else limit - 1))
    if ksize == 1:
        return images
    channels = images.shape[1]
    taps = gaussian_kernel(ksize, sigma, images.device).to(images.dtype)
    radius = ksize // 2
    padded = torch.nn.functional.pad(images, (radius, radius, 0, 0), mode="reflect")
    out = torch.nn.functional.conv2d(padded, taps.view(1, 1, 1, ksize).expand(channels, 1, 1, ksize), groups=channels)
    padded = torch.nn.functional.pad(out, (0, 0, radius, radius), mode="reflect")
    return torch.nn.functional.conv2d(padded, taps.view(1, 1, ksize, 1).expand(channels, 1, ksize, 1), groups=channels)
