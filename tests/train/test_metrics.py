"""The scores of `pipe eval`: Frechet distance and KID against plain implementations, the FID
Inception's layout and resize, the hint scores on constructed colourings, and the device-side
CIELAB, PSNR and SSIM against scikit-image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.linalg
import torch
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from extractors.weights import WeightsMissing
from tests.helpers import REAL_DATA
from train.metrics.fid_preprocess import FID_IMPLS, fid_input, resize_like_pil_bicubic
from train.metrics.frechet import GaussianStats, frechet_distance, gaussian_stats, kernel_inception_distance, unbiased_mmd2
from train.metrics.cielab import srgb_to_lab
from train.metrics.hint_scores import colour_containment, containment_from_lab, hint_adherence
from train.metrics.image_quality import psnr, ssim
from train.metrics.inception_features import InceptionFeatures, resize_like_tensorflow
from tests.stand_ins.inception import stand_in_state_dict
from train.networks.inception import TORCH_FIDELITY_FILE, FIDInception, inception_weights_in, load_fid_inception


def features(seed: int, count: int, dim: int, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """Correlated features whose variances fall over four decades, as Inception activations' do."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    spread = np.logspace(0, -2, dim)
    return (rng.normal(size=(count, dim)) * spread) @ rotation * scale + shift


def sqrtm_frechet(x: np.ndarray, y: np.ndarray) -> float:
    """The reference arithmetic: float64 statistics and scipy's matrix square root."""
    mu_x, mu_y = x.mean(0), y.mean(0)
    s_x, s_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(s_x @ s_y).real
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(s_x) + np.trace(s_y) - 2 * np.trace(root))


@pytest.mark.parametrize("count, dim, scale, shift", [(400, 64, 1.3, 0.2), (3000, 256, 0.7, -0.05), pytest.param(2500, 2048, 1.1, 0.01, marks=pytest.mark.slow)])
def test_frechet_distance_equals_scipys_sqrtm_route(count, dim, scale, shift):
    x, y = features(1, count, dim), features(2, count, dim, scale, shift)
    ours = frechet_distance(gaussian_stats(x), gaussian_stats(y))
    assert ours == pytest.approx(sqrtm_frechet(x, y), rel=1e-6)


@pytest.mark.parametrize("count, dim", [(500, 64), (2500, 2048), (40, 2048)])  # the last: fewer samples than dimensions
def test_fid_of_a_set_with_itself_is_zero(count, dim):
    stats = gaussian_stats(features(3, count, dim))
    assert abs(frechet_distance(stats, stats)) < 1e-6
    if dim < 2048:  # the covariance-only route's two eigendecompositions are slow at 2048
        assert abs(frechet_distance(without_features(stats), without_features(stats))) < 1e-6


def exact_frechet(x: np.ndarray, y: np.ndarray) -> float:
    """The reference, from the centred features X, Y themselves: S_x S_y = X^T X Y^T Y / ((N_x - 1)(N_y - 1))
    has the nonzero eigenvalues of M M^T with M = X Y^T / sqrt((N_x - 1)(N_y - 1)), so tr((S_x S_y)^(1/2))
    is the sum of M's singular values; no eigenvalue of the (singular) D x D product is ever formed."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    nx, ny = len(x), len(y)
    shift = x.mean(0) - y.mean(0)
    trace_sqrt = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt((nx - 1) * (ny - 1))
    return float(shift @ shift + (xc**2).sum() / (nx - 1) + (yc**2).sum() / (ny - 1) - 2 * trace_sqrt)


def without_features(stats: GaussianStats) -> GaussianStats:
    """The same statistics as if read from a file: mean, covariance and count only."""
    return GaussianStats(stats.mean, stats.covariance, stats.count)


def spread_features(seed: int, count: int, dim: int, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """Like `features` without the D x D rotation (cheap at D = 2048): variances over four decades."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(count, dim)) * np.logspace(0, -2, dim) * scale + shift + 0.2 * rng.normal(size=(1, dim))


@pytest.mark.parametrize("count_x, count_y, dim", [(10, 12, 2048), (40, 40, 2048), (30, 50, 256), (300, 200, 256), (600, 500, 64)])
def test_frechet_distance_is_the_exact_value(count_x, count_y, dim):
    """From the features (fewer than the dimensions: the centred features are the factor) and from the
    covariances alone (their eigenpairs, as many as the rank can be): the exact value to round-off."""
    x, y = spread_features(11, count_x, dim), spread_features(12, count_y, dim, 1.2, 0.03)
    expected = exact_frechet(x, y)
    assert frechet_distance(gaussian_stats(x), gaussian_stats(y)) == pytest.approx(expected, rel=1e-11)
    if dim <= 256:  # the eigenpair route costs two D x D eigendecompositions
        assert frechet_distance(without_features(gaussian_stats(x)), without_features(gaussian_stats(y))) == pytest.approx(expected, rel=1e-10)


def paired_sets(tiny: int, count: int = 64, dim: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two centred-by-construction sets in one shared (count - 1)-dimensional subspace whose product
    S_x S_y has known eigenvalues: `tiny` of them real but just under 0.4 x (largest x D x eps), the
    numerical-rank cut-off a D x D eigenvalue route would use. Returns x, y and those eigenvalues."""
    rng = np.random.default_rng(5)
    rank = count - 1
    directions, _ = np.linalg.qr(rng.normal(size=(dim, rank)))

    def centred_basis() -> np.ndarray:
        basis, _ = np.linalg.qr(np.concatenate([np.ones((count, 1)), rng.normal(size=(count, rank))], axis=1))
        return basis[:, 1:]  # orthonormal columns, each orthogonal to the ones vector: centred

    products = np.concatenate([np.logspace(0, -8, rank - tiny), np.full(tiny, 0.4 * dim * np.finfo(np.float64).eps)])
    variances_x = np.logspace(0, -3, rank)
    x = centred_basis() * np.sqrt(variances_x * (count - 1)) @ directions.T + 0.3
    y = centred_basis() * np.sqrt(products / variances_x * (count - 1)) @ directions.T
    return x, y, products


def test_no_real_eigenvalue_is_dropped():
    """Real eigenvalues of S_x S_y below a numerical-rank cut-off still count: dropping the 30 tiny
    ones here would add 2 x 30 x 2.2e-7 to FID."""
    x, y, products = paired_sets(tiny=30)
    x_stats, y_stats = gaussian_stats(x), gaussian_stats(y)
    eigenvalues = np.sort(np.linalg.eigvals(x_stats.covariance @ y_stats.covariance).real)[::-1]
    cut_off = eigenvalues.max() * eigenvalues.size * np.finfo(np.float64).eps
    assert np.allclose(eigenvalues[: products.size], products, rtol=1e-3, atol=1e-15)  # the construction holds
    assert (eigenvalues[: products.size] < cut_off).sum() >= 30
    expected = exact_frechet(x, y)
    cut = np.sqrt(np.where(eigenvalues > cut_off, eigenvalues, 0.0)).sum()
    with_cut_off = float((x_stats.mean - y_stats.mean) @ (x_stats.mean - y_stats.mean) + np.trace(x_stats.covariance) + np.trace(y_stats.covariance) - 2 * cut)
    assert with_cut_off - expected > 1e-5  # what the cut-off got wrong
    assert frechet_distance(x_stats, y_stats) == pytest.approx(expected, rel=1e-12, abs=1e-11)
    assert frechet_distance(without_features(x_stats), without_features(y_stats)) == pytest.approx(expected, rel=1e-12, abs=1e-10)


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    """Isotropic Gaussians N(m1, a^2 I) and N(m2, b^2 I): |m1 - m2|^2 + d (a - b)^2."""
    rng = np.random.default_rng(0)
    dim, count = 16, 200_000
    x = rng.normal(size=(count, dim)) * 1.0
    y = rng.normal(size=(count, dim)) * 2.0 + 0.5
    expected = dim * 0.5**2 + dim * (2.0 - 1.0) ** 2
    assert frechet_distance(gaussian_stats(x), gaussian_stats(y)) == pytest.approx(expected, rel=0.02)


def loop_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 estimator written out term by term."""
    m, dim = len(x), x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / dim + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_the_straightforward_unbiased_mmd():
    x, y = features(4, 30, 8), features(5, 30, 8, 1.2, 0.3)
    assert unbiased_mmd2(x, y) == pytest.approx(loop_mmd2(x, y), rel=1e-10)
    # With subsets as large as the sets, every subset is a permutation: the mean is the full estimate.
    kid = kernel_inception_distance(x, y, subsets=5, subset_size=1000)
    assert kid.subset_size == 30 and kid.mean == pytest.approx(loop_mmd2(x, y), rel=1e-10) and kid.std < 1e-9
    # Smaller subsets: the mean of the per-subset estimates, drawn from the seeded generator.
    rng = np.random.default_rng(7)
    manual = [loop_mmd2(x[rng.choice(30, 10, replace=False)], y[rng.choice(30, 10, replace=False)]) for _ in range(4)]
    kid = kernel_inception_distance(x, y, subsets=4, subset_size=10, seed=7)
    assert kid.mean == pytest.approx(np.mean(manual), rel=1e-10) and kid.std == pytest.approx(np.std(manual), rel=1e-8)


def test_kid_is_unbiased_at_small_sample_counts():
    """Same distribution, 20 samples a side: KID averages to 0 (within 4 standard errors), while the
    Frechet distance of the same draws sits far above 0."""
    values, frechets = [], []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        x, y = rng.normal(size=(20, 16)), rng.normal(size=(20, 16))
        values.append(kernel_inception_distance(x, y, subsets=1).mean)
        frechets.append(frechet_distance(gaussian_stats(x), gaussian_stats(y)))
    standard_error = np.std(values) / np.sqrt(len(values))
    assert abs(np.mean(values)) < 4 * standard_error
    assert np.mean(frechets) > 20 * standard_error


# The published file's layout: names and shapes spelled out independently of the module.
KNOWN_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_4a_3x3.bn.running_var": (192,),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7dbl_5.conv.weight": (192, 128, 1, 7),
    "Mixed_6e.branch7x7_3.conv.weight": (192, 192, 7, 1),
    "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
    "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
    "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch_pool.bn.weight": (192,),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


def test_inception_loads_the_published_layout_and_gives_2048_pool_features(tmp_path):
    state = stand_in_state_dict(seed=3)
    for key, shape in KNOWN_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert len(state) == 472  # 94 conv+BN units x 5 tensors, and the classifier's weight and bias
    assert not any("num_batches_tracked" in k or "AuxLogits" in k for k in state)
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    model = load_fid_inception(path)
    assert torch.equal(model.Mixed_6b.branch7x7dbl_5.conv.weight, state["Mixed_6b.branch7x7dbl_5.conv.weight"])
    extractor = InceptionFeatures(model, "cpu", batch_size=2)
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 3, 64, 80), dtype=np.uint8))
    out = extractor(images)
    assert out.shape == (3, 2048) and out.dtype == np.float64
    assert np.isfinite(out).all() and (out >= 0).all() and out.std() > 0  # pooled ReLU outputs
    # Batching does not change a sample's features.
    assert np.allclose(extractor(images[1:2]), out[1:2], atol=1e-5)


def test_inception_refuses_other_files_with_one_line(tmp_path):
    with pytest.raises(WeightsMissing, match=r"pt_inception-2015-12-05-6726825d\.pth.*pytorch-fid"):
        load_fid_inception(tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    state = stand_in_state_dict()
    state["Mixed_5b.branch_pool.conv.weight"] = torch.zeros(64, 192, 1, 1)
    torch.save(state, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="wrong shapes for Mixed_5b.branch_pool.conv.weight"):
        load_fid_inception(tmp_path / "wrong.pth")
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, tmp_path / "headless.pth")
    with pytest.raises(ValueError, match="lacks fc.weight"):
        load_fid_inception(tmp_path / "headless.pth")


def test_torch_fidelitys_copy_of_the_weights_is_found_too(tmp_path):
    assert inception_weights_in(tmp_path).name == "pt_inception-2015-12-05-6726825d.pth"  # named in the error
    torch.save(stand_in_state_dict(), tmp_path / TORCH_FIDELITY_FILE)
    assert inception_weights_in(tmp_path).name == TORCH_FIDELITY_FILE
    assert isinstance(load_fid_inception(inception_weights_in(tmp_path)), FIDInception)


def test_fid_specific_pools_differ_from_torchvisions():
    """The A/C/E1 average pools leave the padding out; Mixed_7c max-pools its fourth branch."""
    model = FIDInception()
    model.load_state_dict({**model.state_dict(), **stand_in_state_dict(1)})
    ones = torch.ones(1, 192, 5, 5)
    pooled = torch.nn.functional.avg_pool2d(ones, 3, 1, 1, count_include_pad=False)
    assert torch.equal(pooled, ones)  # corners averaged over their 4 valid pixels, not 9
    assert model.Mixed_7c.max_pool and not model.Mixed_7b.max_pool


def tensorflow_resize_reference(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TensorFlow 1.x ResizeBilinear (align_corners=False, no half-pixel centres), pixel by pixel in
    float32 as its kernel computes: source position out * (in / out), top-left + (top-right - top-left) * dx
    across, then the same down."""
    image = image.astype(np.float32)
    in_h, in_w = image.shape[:2]
    scale_y, scale_x = np.float32(in_h) / np.float32(out_h), np.float32(in_w) / np.float32(out_w)
    out = np.zeros((out_h, out_w, image.shape[2]), np.float32)
    for y in range(out_h):
        in_y = np.float32(y) * scale_y
        top = int(np.floor(in_y))
        bottom, dy = min(top + 1, in_h - 1), in_y - np.floor(in_y)
        for x in range(out_w):
            in_x = np.float32(x) * scale_x
            left = int(np.floor(in_x))
            right, dx = min(left + 1, in_w - 1), in_x - np.floor(in_x)
            upper = image[top, left] + (image[top, right] - image[top, left]) * dx
            lower = image[bottom, left] + (image[bottom, right] - image[bottom, left]) * dx
            out[y, x] = upper + (lower - upper) * dy
    return out


@pytest.mark.parametrize("height, width", [(512, 512), (64, 80), (300, 299)])
def test_resize_matches_tensorflows_bilinear_method(height, width):
    """Within 1e-4 grey levels (float32 rounding) of the per-pixel reference; on noise, clearly not
    OpenCV's half-pixel bilinear when the scale is far from 1."""
    image = np.random.default_rng(height).integers(0, 256, (height, width, 3)).astype(np.float32)
    ours = resize_like_tensorflow(torch.from_numpy(image).permute(2, 0, 1)[None], 299)[0].permute(1, 2, 0).numpy()
    reference = tensorflow_resize_reference(image, 299, 299)
    assert np.abs(ours - reference).max() < 1e-4
    if height != 300:
        opencv = cv2.resize(image, (299, 299), interpolation=cv2.INTER_LINEAR)
        assert np.abs(ours - opencv).mean() > 5


TF_RESIZE_REFERENCE = Path(__file__).parent / "data" / "tf_resize_reference.npz"


def test_resize_equals_tensorflows_own_output():
    """Against outputs of TensorFlow's ResizeBilinear itself (tf.compat.v1, align_corners=False, no
    half-pixel centres; see data/make_tf_resize_reference.py): equal to float32 rounding, down and up."""
    reference = np.load(TF_RESIZE_REFERENCE)
    compared = 0
    for name in reference.files:
        case, _, size = name.partition("_")
        if size == "input":
            continue
        image = torch.from_numpy(reference[f"{case}_input"]).permute(2, 0, 1)[None]
        ours = resize_like_tensorflow(image, int(size))[0].permute(1, 2, 0).numpy()
        assert ours.shape == reference[name].shape
        assert np.abs(ours - reference[name]).max() <= 1e-4, name
        compared += 1
    assert compared == 5


def test_resize_known_values():
    """Halving samples the even pixels exactly; doubling repeats the last row and column."""
    image = torch.arange(598 * 598, dtype=torch.float32).reshape(1, 1, 598, 598)
    assert torch.equal(resize_like_tensorflow(image, 299), image[..., ::2, ::2])
    small = torch.tensor([[0.0, 10.0], [20.0, 30.0]])[None, None]
    assert resize_like_tensorflow(small, 4)[0, 0].tolist() == [[0, 5, 10, 10], [10, 15, 20, 20], [20, 25, 30, 30], [20, 25, 30, 30]]


@pytest.mark.parametrize("height, width", [(299, 299), (200, 333)])
def test_features_do_not_depend_on_the_memory_layout(height, width):
    """channels_last batches (what a loader or an HWC array permuted to CHW gives) and contiguous ones
    give bit-identical features under every implementation: the network always gets the standard
    layout (channels_last input takes other convolution kernels, 1e-4 away)."""
    model = FIDInception()
    model.load_state_dict({**model.state_dict(), **stand_in_state_dict(2)})
    hwc = np.random.default_rng(height).integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    channels_last = torch.from_numpy(hwc).permute(0, 3, 1, 2)
    assert channels_last.is_contiguous(memory_format=torch.channels_last) and not channels_last.is_contiguous()
    for impl in FID_IMPLS:
        extractor = InceptionFeatures(model, "cpu", batch_size=1, impl=impl)
        assert fid_input(channels_last, impl).is_contiguous()
        assert np.array_equal(extractor(channels_last), extractor(channels_last.contiguous())), impl
    inputs = fid_input(channels_last, "tf")
    with torch.no_grad():
        assert torch.equal(model.eval().pool_features(inputs.contiguous(memory_format=torch.channels_last)), model.pool_features(inputs))


def test_the_implementations_prepare_images_as_their_packages_do():
    """pytorch-fid: x / 255, torch's bilinear interpolate (align_corners=False), 2x - 1; tf and clean:
    (x - 128) / 128 after their resizes; at 299 x 299 tf and clean are the same and pytorch-fid differs
    by its normalization alone (255 -> 1 against 0.9922, 128 -> 0.0039 against 0)."""
    images = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (2, 3, 180, 240), dtype=np.uint8))
    expected = 2 * torch.nn.functional.interpolate(images.float() / 255, size=(299, 299), mode="bilinear", align_corners=False) - 1
    assert torch.equal(fid_input(images, "pytorch-fid"), expected)
    assert torch.equal(fid_input(images, "tf"), (resize_like_tensorflow(images) - 128) / 128)
    assert torch.equal(fid_input(images, "clean"), (resize_like_pil_bicubic(images) - 128) / 128)
    levels = torch.tensor([0, 128, 255], dtype=torch.uint8).repeat_interleave(299 * 299 // 3 + 1)[: 299 * 299].reshape(1, 1, 299, 299).expand(1, 3, 299, 299)
    assert torch.equal(fid_input(levels, "tf"), fid_input(levels, "clean"))
    assert fid_input(levels, "tf").unique().tolist() == [-1.0, 0.0, 0.9921875]
    assert fid_input(levels, "pytorch-fid").unique().tolist() == pytest.approx([-1.0, 1 / 255, 1.0], abs=1e-7)
    with pytest.raises(ValueError, match="--fid-impl must be one of: tf, pytorch-fid, clean"):
        fid_input(images, "torch-fidelity")
    with pytest.raises(ValueError, match="uint8 RGB"):
        fid_input(images.float(), "tf")


@pytest.mark.parametrize("height, width", [(512, 512), (64, 80), (512, 400), (1000, 333), (333, 1000), (299, 512), (300, 299)])
def test_clean_resize_equals_pils_bicubic(height, width):
    """Bit-equal to PIL's mode-F bicubic resize of each channel, clipped to [0, 255] (clean-fid's
    "clean" resize), shrinking and enlarging, on images whose vertical pass PIL runs first (512 x 400,
    1000 x 333) or second."""
    from PIL import Image

    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    expected = np.stack([np.asarray(Image.fromarray(image[..., c].astype(np.float32), mode="F").resize((299, 299), Image.BICUBIC)).clip(0, 255)
                         for c in range(3)])
    ours = resize_like_pil_bicubic(torch.from_numpy(image).permute(2, 0, 1)[None])[0].numpy()
    assert ours.dtype == np.float32 and np.array_equal(ours, expected)


# Hint scores on a constructed picture: a black vertical line at x = 20..21 splits a 40 x 60 image
# into a left region (40 x 20) and a right one (40 x 38).
RED, BLUE, GREEN = (220, 30, 30), (30, 60, 220), (40, 200, 60)


def two_regions() -> tuple[np.ndarray, np.ndarray]:
    truth = np.zeros((40, 60, 3), np.uint8)
    truth[:, :20], truth[:, 22:] = RED, BLUE
    line = np.full((40, 60), 255, np.uint8)
    line[:, 20:22] = 0
    return truth, line


def hint_at(points: list[tuple[int, int]], colours: list[tuple[int, int, int]]) -> np.ndarray:
    hint = np.zeros((40, 60, 4), np.uint8)
    for (y, x), colour in zip(points, colours):
        hint[y, x] = (*colour, 255)
    return hint


def test_a_perfect_colouring_scores_perfect():
    truth, line = two_regions()
    hint = hint_at([(10, 5), (30, 40), (5, 55)], [RED, BLUE, BLUE])
    assert np.allclose(hint_adherence(truth, hint), 0.0)
    result = colour_containment(truth, truth, line, hint)
    assert result.leak_shares == [0.0, 0.0] and result.absent == 0  # two distinct (region, colour) groups


def test_flooding_across_a_line_costs_the_leaked_share():
    truth, line = two_regions()
    output = truth.copy()
    output[:, 22:] = RED  # the left region's red floods the right region
    output[:, 20:22] = 0
    hint = hint_at([(10, 5)], [RED])
    leak = colour_containment(output, truth, line, hint).leak_shares
    assert leak == [pytest.approx(38 / (20 + 38))]
    # Half the right region flooded: half the leak area.
    half = truth.copy()
    half[:20, 22:] = RED
    assert colour_containment(half, truth, line, hint).leak_shares == [pytest.approx(19 * 40 / (20 * 40 + 19 * 40))]


def test_truths_own_copies_of_a_colour_are_not_leaks():
    truth, line = two_regions()
    truth[:10, 40:50] = RED  # a red patch in the right region belongs there
    hint = hint_at([(10, 5)], [RED])
    assert colour_containment(truth, truth, line, hint).leak_shares == [0.0]


def test_hints_on_lines_and_absent_colours_are_counted_not_scored():
    truth, line = two_regions()
    hint = hint_at([(10, 20), (10, 5)], [RED, GREEN])
    result = colour_containment(truth, truth, line, hint)
    assert result.leak_shares == [] and result.on_lines == 1 and result.absent == 1


def test_adherence_is_the_ciede2000_of_the_window_mean():
    truth, _ = two_regions()
    output = truth.copy()
    output[:, :20] = (200, 60, 40)
    hint = hint_at([(10, 5), (0, 0)], [RED, RED])
    expected = deltaE_ciede2000(rgb2lab(np.array([[RED]], np.uint8)), rgb2lab(np.array([[(200, 60, 40)]], np.uint8)))[0, 0]
    assert hint_adherence(output, hint) == pytest.approx([expected, expected], rel=1e-6)
    # Next to the line, the window mean takes in the dark line pixels and the error grows.
    assert hint_adherence(truth, hint_at([(10, 19)], [RED]))[0] > 5


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_DATA / "real" / "color").is_dir(), reason="real illustrations not available")
def test_hint_scores_on_real_illustrations(tmp_path):
    """Real illustrations, their xdog lines and C-FID hints: the truth contains every hinted colour
    perfectly; colour bled across the lines by a blur leaks, and misses the hints by more."""
    from pipeline.cli import main
    from pipeline.eval.hints import eval_hints
    from train.loader import LoaderConfig, make_loader

    root = tmp_path / "real"
    assert main(["prepare", str(REAL_DATA / "real" / "color"), str(root), "--workers", "0"]) == 0
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0
    assert main(["shard", str(root), "--hints", "patches", "--val", "0.01", "--workers", "0"]) == 0
    batch = next(iter(make_loader(LoaderConfig(shards=(str(root / "shards" / "train"),), batch_size=32, workers=0, shuffle_buffer=0, images=("color", "line")))))
    hints = eval_hints("cfid", batch["color"], batch["__key__"], None)
    assert len(batch["__key__"]) >= 8
    for color, line, hint in zip(batch["color"], batch["line"], hints):
        truth, line, hint = color.permute(1, 2, 0).numpy(), line[0].numpy(), hint.permute(1, 2, 0).numpy()
        bled = cv2.GaussianBlur(truth, (0, 0), 8)
        perfect, blurred = colour_containment(truth, truth, line, hint), colour_containment(bled, truth, line, hint)
        assert perfect.leak_shares and max(perfect.leak_shares) == 0.0 and perfect.absent == 0
        assert np.mean(blurred.leak_shares) > 0
        assert hint_adherence(bled, hint).mean() > hint_adherence(truth, hint).mean() + 1


def test_srgb_to_lab_equals_scikit_images_rgb2lab():
    """A million random colours plus the corners and greys of the cube."""
    rng = np.random.default_rng(5)
    corners = np.array(np.meshgrid(*[[0, 1, 254, 255]] * 3, indexing="ij")).reshape(3, -1).T
    greys = np.repeat(np.arange(256)[:, None], 3, axis=1)
    colours = np.concatenate([rng.integers(0, 256, (1_000_000, 3)), corners, greys]).astype(np.uint8)
    ours = srgb_to_lab(torch.from_numpy(colours.T.copy())[None, :, :, None])[0, :, :, 0].T.numpy()
    assert np.abs(ours - rgb2lab(colours[:, None, :])[:, 0]).max() < 1e-9
    with pytest.raises(ValueError, match="uint8 RGB"):
        srgb_to_lab(torch.zeros(1, 3, 4, 4))


def quality_pairs() -> tuple[np.ndarray, np.ndarray]:
    """Truths and outputs (N, H, W, 3) uint8: a flat illustration blurred, noisy, shifted, identical."""
    from pipeline.demo.illustrations import make_illustration

    rng = np.random.default_rng(8)
    truths = np.stack([make_illustration(rng, 96, 80) for _ in range(4)])
    outputs = np.stack([
        cv2.GaussianBlur(truths[0], (0, 0), 2),
        np.clip(truths[1].astype(int) + rng.integers(-40, 41, truths[1].shape), 0, 255).astype(np.uint8),
        np.roll(truths[2], 3, axis=1),
        truths[3],
    ])
    return truths, outputs


def test_psnr_and_ssim_equal_scikit_images():
    truths, outputs = quality_pairs()
    as_batch = lambda images: torch.from_numpy(images).permute(0, 3, 1, 2)  # noqa: E731
    ours_psnr, ours_ssim = psnr(as_batch(outputs), as_batch(truths)), ssim(as_batch(outputs), as_batch(truths))
    for i, (truth, output) in enumerate(zip(truths, outputs)):
        expected_ssim = structural_similarity(truth, output, channel_axis=2, data_range=255)
        assert ours_ssim[i].item() == pytest.approx(expected_ssim, abs=1e-12)
        if i < 3:
            assert ours_psnr[i].item() == pytest.approx(peak_signal_noise_ratio(truth, output, data_range=255), rel=1e-12)
    assert ours_psnr[3].item() == float("inf") and ours_ssim[3].item() == pytest.approx(1.0, abs=1e-12)
    # Float images in the same range give the same numbers (summed in float64 instead of int64).
    floats = ssim(as_batch(outputs).double(), as_batch(truths).float())
    assert torch.allclose(floats, ours_ssim, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="one shape"):
        ssim(as_batch(outputs)[:2], as_batch(truths)[:3])
    with pytest.raises(ValueError, match="odd window"):
        ssim(as_batch(outputs), as_batch(truths), window=4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_scores_agree_between_cpu_and_cuda():
    truths, outputs = quality_pairs()
    as_batch = lambda images, device: torch.from_numpy(images).permute(0, 3, 1, 2).to(device)  # noqa: E731
    for function in (psnr, ssim):
        on_cpu = function(as_batch(outputs, "cpu"), as_batch(truths, "cpu"))
        on_gpu = function(as_batch(outputs, "cuda"), as_batch(truths, "cuda")).cpu()
        assert torch.allclose(on_gpu[:3], on_cpu[:3], rtol=1e-9, atol=1e-12)
    lab_cpu, lab_gpu = srgb_to_lab(as_batch(truths, "cpu")), srgb_to_lab(as_batch(truths, "cuda")).cpu()
    assert torch.allclose(lab_gpu, lab_cpu, atol=1e-9)
    truth, line = two_regions()
    output = truth.copy()
    output[:20, 22:] = RED
    hint = hint_at([(10, 5), (30, 40)], [RED, BLUE])
    as_lab = lambda image, device: srgb_to_lab(torch.from_numpy(image).permute(2, 0, 1)[None].to(device))[0]  # noqa: E731
    on_cpu = containment_from_lab(as_lab(output, "cpu"), as_lab(truth, "cpu"), line, hint)
    on_gpu = containment_from_lab(as_lab(output, "cuda"), as_lab(truth, "cuda"), line, hint)
    assert on_gpu == on_cpu and on_cpu.leak_shares[0] > 0
