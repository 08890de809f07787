"""Did the model use the user's colours, and keep them inside the lines? Per-image hint scores.

Hint adherence: for every hint pixel (alpha >= 128; at most `max_pixels` per image, evenly spaced),
the CIEDE2000 difference (scikit-image) between the hint's colour and the output's mean colour in
the (2r + 1)^2 window around it (clipped at the borders). 0 is a perfect match; about 2 is a just
noticeable difference.

Colour containment (new; defined here): the line art splits the image into regions, the
4-connected components of its non-line pixels (line pixels: grey < `line_threshold`). For each
distinct (region, colour) among the hint pixels that do not sit on a line (at most
`MAX_CONTAINMENT_HINTS` pixels per image, evenly spaced):
  - O, the output's pixels of the hint's colour: CIE76 distance to it (Euclidean in CIELAB) below
    `tolerance`, line pixels excluded;
  - T, the truth's pixels of that colour, found the same way;
  - leaked = O minus the hint's region minus T: the colour where it is neither hinted nor true;
  - leak share = |leaked| / |O| (a hint whose colour is nowhere in the output has nothing to leak
    and is not scored).
Containment is 1 - the mean leak share over scored hints: 1 when the output puts the colour only
inside its region or where the truth has it too; flooding a neighbouring region of area b from a
region of area a lowers it by b / (a + b). CIE76 rather than CIEDE2000 here because every hint needs
a distance for every pixel of two images, and the plain Euclidean one is about 30x cheaper. The
whole-image work (CIELAB, distances) runs in PyTorch on the images' device.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from skimage.color import deltaE_ciede2000, rgb2lab

from train.metrics.cielab import srgb_to_lab

WINDOW_RADIUS = 2
MAX_HINT_PIXELS = 256
MAX_CONTAINMENT_HINTS = 64
LINE_THRESHOLD = 192
COLOUR_TOLERANCE = 10.0


@dataclass(frozen=True)
class ContainmentResult:
    leak_shares: list[float]  # one per scored (region, colour) hint
    on_lines: int  # hint pixels skipped because they sit on a line pixel
    absent: int  # hint groups whose colour is nowhere in the output


def hint_pixels(hint: np.ndarray, max_pixels: int = MAX_HINT_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) y, x of the given pixels of an RGBA hint, and their (N, 3) uint8 colours."""
    ys, xs = np.nonzero(hint[..., 3] >= 128)
    if ys.size > max_pixels:
        keep = np.linspace(0, ys.size - 1, max_pixels).round().astype(int)
        ys, xs = ys[keep], xs[keep]
    return np.stack([ys, xs], axis=1), hint[ys, xs, :3]


def window_means(image: np.ndarray, yx: np.ndarray, radius: int = WINDOW_RADIUS) -> np.ndarray:
    """Mean RGB of `image` in the (2r + 1)^2 window around each point, over the pixels inside the image."""
    side = 2 * radius + 1
    sums = cv2.boxFilter(image.astype(np.float64), -1, (side, side), normalize=False, borderType=cv2.BORDER_CONSTANT)
    counts = cv2.boxFilter(np.ones(image.shape[:2], np.float64), -1, (side, side), normalize=False, borderType=cv2.BORDER_CONSTANT)
    return sums[yx[:, 0], yx[:, 1]] / counts[yx[:, 0], yx[:, 1], None]


def _lab(rgb: np.ndarray) -> np.ndarray:
    return rgb2lab(np.asarray(rgb, np.float64).reshape(-1, 1, 3) / 255.0).reshape(-1, 3)


def hint_adherence(output: np.ndarray, hint: np.ndarray, radius: int = WINDOW_RADIUS, max_pixels: int = MAX_HINT_PIXELS) -> np.ndarray:
    """CIEDE2000 per hint pixel between the hint colour and the output (uint8 RGB H x W x 3) around it."""
    yx, colours = hint_pixels(hint, max_pixels)
    if yx.shape[0] == 0:
        return np.zeros(0)
    return deltaE_ciede2000(_lab(colours), _lab(window_means(output, yx, radius)))


def line_regions(line: np.ndarray, threshold: int = LINE_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """(labels, on_line): 4-connected regions of the non-line pixels (label 0 on lines) and the line mask."""
    on_line = line < threshold
    _, labels = cv2.connectedComponents((~on_line).astype(np.uint8), connectivity=4)
    return labels, on_line


def colour_containment(output: np.ndarray, truth: np.ndarray, line: np.ndarray, hint: np.ndarray, threshold: int = LINE_THRESHOLD, tolerance: float = COLOUR_TOLERANCE) -> ContainmentResult:
    """Leak shares of each hinted (region, colour) of one uint8 RGB output (H x W x 3) against its
    truth, line art (H x W) and RGBA hint; see the module docs for the definition."""
    lab = srgb_to_lab(torch.from_numpy(np.stack([output, truth])).permute(0, 3, 1, 2))
    return containment_from_lab(lab[0], lab[1], line, hint, threshold, tolerance)


def _near_colours(pixels: torch.Tensor, targets: torch.Tensor, tolerance: float) -> torch.Tensor:
    """(colours, pixels): whether each CIELAB pixel (3, N) lies within CIE76 `tolerance` of each
    target colour (K, 3). Squared distances in float32 (round-off about 1e-3 against a tolerance of
    10 units), one row per colour so that counts reduce along contiguous memory."""
    pixels = pixels.float()
    squared = (targets**2).sum(dim=1, keepdim=True) - 2.0 * targets @ pixels + (pixels**2).sum(dim=0, keepdim=True)
    return squared < tolerance**2


def containment_from_lab(output_lab: torch.Tensor, truth_lab: torch.Tensor, line: np.ndarray, hint: np.ndarray, threshold: int = LINE_THRESHOLD, tolerance: float = COLOUR_TOLERANCE) -> ContainmentResult:
    """colour_containment of an output and truth already in CIELAB (3, H, W), computed on their device."""
    yx, colours = hint_pixels(hint, max_pixels=MAX_CONTAINMENT_HINTS)
    labels, on_line = line_regions(line, threshold)
    groups: dict[tuple[int, tuple[int, int, int]], None] = {}
    skipped = 0
    for (y, x), colour in zip(yx, colours):
        if on_line[y, x]:
            skipped += 1
            continue
        groups.setdefault((int(labels[y, x]), tuple(int(c) for c in colour)), None)
    if not groups:
        return ContainmentResult([], skipped, 0)
    device = output_lab.device
    regions = torch.tensor([region for region, _ in groups], device=device)
    hint_colours = torch.tensor([colour for _, colour in groups], dtype=torch.uint8, device=device)
    targets = srgb_to_lab(hint_colours.T[None, :, :, None])[0, :, :, 0].T.float()  # (hints, 3)
    free = torch.from_numpy(~on_line.reshape(-1)).to(device)
    painted = _near_colours(output_lab.reshape(3, -1)[:, free], targets, tolerance)
    # Painted outside the hint's region: a leak unless the truth has the colour there too.
    elsewhere = torch.from_numpy(labels.reshape(-1)).to(device)[free][None, :] != regions[:, None]
    leaked = painted & elsewhere & ~_near_colours(truth_lab.reshape(3, -1)[:, free], targets, tolerance)
    totals, leak_counts = painted.sum(dim=1).tolist(), leaked.sum(dim=1).tolist()
    shares = [leak / total for leak, total in zip(leak_counts, totals) if total > 0]
    return ContainmentResult(shares, skipped, sum(total == 0 for total in totals))
