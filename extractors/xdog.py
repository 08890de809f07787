"""XDoG line art (Winnemoeller et al. 2012, the sharpened form used by anime colorization datasets).

S = (1 + p) * G_sigma(L) - p * G_{k*sigma}(L) on the luminance L in [0, 1], then a soft threshold:
T = 1 where S >= eps, else 1 + tanh(phi * (S - eps)). With phi = 1e9 the threshold is practically hard.
"""

from __future__ import annotations

import torch

from extractors.ops import check_uint8_rgb, gaussian_blur, per_sample, rgb_to_gray_uint8, to_uint8

SIGMA_CHOICES = (0.3, 0.4, 0.5)
K = 4.5
P = 19.0
EPS = 0.01
PHI = 1e9


def xdog_response(luminance: torch.Tensor, sigma, k: float = K, p: float = P, eps: float = EPS, phi: float = PHI) -> torch.Tensor:
    """Float (B,1,H,W) luminance in [0,1] -> float line image in [0,1] (1 = paper)."""
    sigmas = per_sample(sigma, luminance.shape[0], luminance.device)
    fine = gaussian_blur(luminance, sigmas)
    coarse = gaussian_blur(luminance, sigmas * k)
    sharpened = (1 + p) * fine - p * coarse
    return torch.where(sharpened >= eps, torch.ones_like(sharpened), 1 + torch.tanh(phi * (sharpened - eps)))


def extract_xdog(images: torch.Tensor, sigma=0.4, k: float = K, p: float = P, eps: float = EPS, phi: float = PHI) -> torch.Tensor:
    """uint8 RGB (B,3,H,W) -> uint8 grey lines (B,1,H,W); `sigma` may be one value per sample."""
    check_uint8_rgb(images)
    luminance = rgb_to_gray_uint8(images).to(torch.float32) / 255.0
    return to_uint8(xdog_response(luminance, sigma, k, p, eps, phi))
