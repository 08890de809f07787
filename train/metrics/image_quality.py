"""PSNR and SSIM of image batches, computed on the batch's own device.

Both follow scikit-image's `peak_signal_noise_ratio` and `structural_similarity` with the settings
`pipe eval` reports (data range 255; SSIM with its defaults: a 7x7 uniform window, K1 = 0.01,
K2 = 0.03, sample covariances, the mean over the pixels whose window lies inside the image, then over
the channels), in float64, so the numbers equal scikit-image's to round-off (tests compare them).
They run here rather than through scikit-image because the eval loop's outputs are already on the
device: on a GPU the scores then cost almost nothing beside the generator, where scikit-image's
SSIM took about 120 ms of one CPU core per 512x512 image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_WINDOW = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03
CHUNK_VALUES = 1 << 20  # SSIM works through a batch in chunks of about this many values


def _check_pair(output: torch.Tensor, truth: torch.Tensor) -> None:
    if output.ndim != 4 or output.shape != truth.shape:
        raise ValueError(f"expected two image batches (B, C, H, W) of one shape, got {tuple(output.shape)} and {tuple(truth.shape)}")


def psnr(output: torch.Tensor, truth: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """(B,) peak signal-to-noise ratio in dB of each output against its truth (inf where they are equal)."""
    _check_pair(output, truth)
    mse = (output.to(torch.float64) - truth.to(output.device, torch.float64)).square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(data_range**2 / mse)


def _window_sums(images: torch.Tensor, window: int) -> torch.Tensor:
    """Sum over each full window (running sums down, then across), only where the window fits inside
    the image. Exact for integer images, and about twice as fast on a CPU as pooling."""
    rows = F.pad(images.cumsum(dim=-2), (0, 0, 1, 0))
    images = rows[..., window:, :] - rows[..., :-window, :]
    columns = F.pad(images.cumsum(dim=-1), (1, 0))
    return columns[..., window:] - columns[..., :-window]


def ssim(output: torch.Tensor, truth: torch.Tensor, data_range: float = 255.0, window: int = SSIM_WINDOW) -> torch.Tensor:
    """(B,) mean structural similarity of each output against its truth, over pixels and channels."""
    _check_pair(output, truth)
    if window % 2 == 0 or min(output.shape[-2:]) < window:
        raise ValueError(f"SSIM needs an odd window no larger than the images: window {window}, images {tuple(output.shape[-2:])}")
    # A few images at a time: the float64 maps of a whole batch (about 100 MB each for 16 images of
    # 512 x 512) fall out of the CPU's caches, which made a batch of 16 1.7x slower per image than one.
    per_chunk = max(1, CHUNK_VALUES // output[0].numel())
    return torch.cat([_ssim(o, t, data_range, window) for o, t in zip(output.split(per_chunk), truth.split(per_chunk))])


def _ssim(output: torch.Tensor, truth: torch.Tensor, data_range: float, window: int) -> torch.Tensor:
    # Integer images (uint8) are summed in int64: exact sums, then float64 for the ratios.
    exact = not (output.is_floating_point() or truth.is_floating_point())
    x, y = (images.to(output.device, torch.int64 if exact else torch.float64) for images in (output, truth))
    count = window * window
    mean_x, mean_y, mean_xx, mean_yy, mean_xy = (_window_sums(t, window).to(torch.float64) / count for t in (x, y, x * x, y * y, x * y))
    cov_norm = count / (count - 1)  # sample covariance over the window's pixels
    var_x = cov_norm * (mean_xx - mean_x * mean_x)
    var_y = cov_norm * (mean_yy - mean_y * mean_y)
    cov_xy = cov_norm * (mean_xy - mean_x * mean_y)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    similarity = ((2 * mean_x * mean_y + c1) * (2 * cov_xy + c2)) / ((mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2))
    return similarity.mean(dim=(1, 2, 3))
