"""Hint schemes: draws against their published distributions, and what applying them paints."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy import stats

from pipeline.demo.illustrations import make_illustration
from manifests.seeding import sample_rng
from synth.common import DrawInput, SynthContext, bin_color, blur_separable, color_histogram, opencv_sigma_for_ksize
from synth.hints import HINTS, NO_HINT, apply_hints, draw_hint, parse_hint_names
from synth.hints.cfid import SEGMENT_COUNTS, cfid_segments, draw_cfid_hints
from synth.hints.palette import render_palette, top_colors
from synth.hints.patches import draw_patch_hints, patch_box
from synth.hints.points import draw_point_hints
from tests.synth.stats import assert_fits, assert_share, assert_uniform_integers

DRAWS = 5000
CONTEXT = SynthContext()


def illustration(seed: int, height: int = 128, width: int = 128) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(make_illustration(np.random.default_rng(seed), width, height).transpose(2, 0, 1)))


def blank(height: int, width: int) -> DrawInput:
    return DrawInput("k", torch.zeros((3, height, width), dtype=torch.uint8))


def clipped_rounded_normal(mean: float, sd: float, size: int) -> np.ndarray:
    """P(Y = k), k = 0..size-1, for Y = clip(round(N(mean, sd^2)), 0, size - 1)."""
    edges = np.arange(size + 1) - 0.5
    cdf = stats.norm.cdf(edges, mean, sd)
    cdf[0], cdf[-1] = 0.0, 1.0  # the tails are clipped onto the first and last pixel
    return np.diff(cdf)


def test_patch_count_is_geometric_one_tenth_and_sides_uniform_4_to_16():
    sample = blank(256, 192)
    draws = [draw_patch_hints(np.random.default_rng(i), sample, CONTEXT) for i in range(DRAWS)]
    counts = np.array([len(d["sides"]) for d in draws])
    assert counts.min() >= 1
    # Geometric(p = 1/10) on {1, 2, ...}: mean 1/p = 10, variance (1 - p)/p^2 = 90.
    assert abs(counts.mean() - 10) < 4 * np.sqrt(90 / DRAWS)
    assert abs(counts.var() / 90 - 1) < 0.12
    support = np.arange(1, 60)
    observed = np.append(np.bincount(counts, minlength=60)[1:60], (counts >= 60).sum())
    expected = np.append(stats.geom.pmf(support, 0.1), stats.geom.sf(59, 0.1))
    assert_fits(observed, expected, "patch count")
    assert_uniform_integers(np.concatenate([d["sides"] for d in draws]), 4, 16, "patch side")


def test_patch_centres_follow_the_gaussian_around_the_image_centre():
    height, width = 256, 192
    sample = blank(height, width)
    centres = np.concatenate([draw_patch_hints(np.random.default_rng(i), sample, CONTEXT)["centers"] for i in range(DRAWS // 2)])
    for axis, size in ((0, height), (1, width)):
        values = centres[:, axis]
        probabilities = clipped_rounded_normal(size / 2, size / 4, size)
        support = np.arange(size)
        mean = (support * probabilities).sum()
        sd = np.sqrt((((support - mean) ** 2) * probabilities).sum())
        # Mean at the centre; spread size / 4 before clipping (about 5% less after, as computed).
        assert abs(mean - size / 2) < 1 and 0.93 < sd / (size / 4) < 0.97
        assert abs(values.mean() - mean) < 4 * sd / np.sqrt(len(values))
        assert abs(values.std() / sd - 1) < 0.02
        binned_p = np.add.reduceat(probabilities, np.arange(0, size, 8))
        binned_n = np.add.reduceat(np.bincount(values, minlength=size), np.arange(0, size, 8))
        assert_fits(binned_n, binned_p, f"patch centre axis {axis}")


def test_patches_paint_their_squares_with_the_mean_colour_and_nothing_else():
    image = illustration(3)
    params = draw_hint(np.random.default_rng(5), DrawInput("k", image), CONTEXT, ("patches",))
    hint = apply_hints(image[None], [params])[0]
    expected_alpha = np.zeros((128, 128), bool)
    for center, side in zip(params["centers"], params["sides"]):
        y0, x0, y1, x1 = patch_box(center, side, 128, 128)
        expected_alpha[y0:y1, x0:x1] = True
    assert np.array_equal(hint[3].numpy() == 255, expected_alpha)
    assert not hint[:3][:, ~torch.from_numpy(expected_alpha)].any()
    # The last patch painted is on top: its square holds its own mean colour.
    y0, x0, y1, x1 = patch_box(params["centers"][-1], params["sides"][-1], 128, 128)
    mean = image[:, y0:y1, x0:x1].float().mean(dim=(1, 2)).round()
    assert torch.equal(hint[:3, y0:y1, x0:x1].float(), mean.view(3, 1, 1).expand(3, y1 - y0, x1 - x0))


def test_point_count_is_uniform_0_to_128_and_positions_uniform():
    sample = blank(64, 96)
    draws = [draw_point_hints(np.random.default_rng(i), sample, CONTEXT) for i in range(10_000)]
    assert_uniform_integers([len(d["yx"]) for d in draws], 0, 128, "point count")
    yx = np.concatenate([d["yx"] for d in draws if d["yx"]])
    assert_uniform_integers(yx[:, 0], 0, 63, "point row")
    assert_uniform_integers(yx[:, 1], 0, 95, "point column")


def test_points_copy_the_colour_of_exactly_their_pixels():
    image = illustration(1)
    params = draw_hint(np.random.default_rng(2), DrawInput("k", image), CONTEXT, ("points",))
    hint = apply_hints(image[None], [params])[0]
    given = {tuple(p) for p in params["yx"]}
    assert int((hint[3] == 255).sum()) == len(given) and int((hint[3] > 0).sum()) == len(given)
    for y, x in given:
        assert torch.equal(hint[:3, y, x], image[:, y, x])


@pytest.mark.parametrize("height,width", [(256, 256), (200, 320)])
def test_cfid_has_1_1_1_1_2_2_20_pixels_per_segment_and_the_same_pixels_per_key(height, width):
    segments = cfid_segments(height, width)
    area = np.zeros((height, width), int)
    for _, y0, y1, x0, x1, _ in segments:
        area[y0:y1, x0:x1] += 1
    assert (area == 1).all(), "the 7 segments tile the image"
    for key_index in range(50):
        key = f"{key_index:064x}"
        sample = blank(height, width)
        params = draw_cfid_hints(np.random.default_rng(key_index), DrawInput(key, sample.image), CONTEXT)
        again = draw_cfid_hints(np.random.default_rng(999), DrawInput(key, sample.image), CONTEXT)
        assert params == again, "the layout depends on the key only"
        pixels = params["yx"]
        assert len({tuple(p) for p in pixels}) == 28
        per_segment = [sum(y0 <= y < y1 and x0 <= x < x1 for y, x in pixels) for _, y0, y1, x0, x1, _ in segments]
        assert per_segment == list(SEGMENT_COUNTS)
    other = draw_cfid_hints(np.random.default_rng(0), DrawInput("f" * 64, blank(height, width).image), CONTEXT)
    assert other["yx"] != draw_cfid_hints(np.random.default_rng(0), DrawInput("e" * 64, blank(height, width).image), CONTEXT)["yx"]


def test_blur_matches_opencv_on_the_whitened_image():
    image = illustration(4, 160, 160)
    params = draw_hint(np.random.default_rng(0), DrawInput("k", image), CONTEXT, ("blur",))
    assert len(params["boxes"]) == 30 and params["kernel_size"] == 115
    assert all(y1 - y0 == 45 and x1 - x0 == 45 for y0, x0, y1, x1 in params["boxes"])
    hint = apply_hints(image[None], [params])[0].numpy()
    whitened = image.permute(1, 2, 0).numpy().copy()
    mask = np.full(whitened.shape[:2], 255.0, np.float32)
    for y0, x0, y1, x1 in params["boxes"]:
        whitened[y0:y1, x0:x1] = 255
        mask[y0:y1, x0:x1] = 0
    expected = cv2.GaussianBlur(whitened.astype(np.float32), (115, 115), 0)
    assert np.abs(hint[:3].transpose(1, 2, 0).astype(float) - expected).max() <= 1.0
    assert np.abs(hint[3].astype(float) - cv2.GaussianBlur(mask, (115, 115), 0)).max() <= 1.0


def test_blur_kernel_shrinks_for_small_images_and_keeps_flat_images_flat():
    flat = torch.full((1, 3, 40, 40), 77.0)
    assert torch.allclose(blur_separable(flat, 115, opencv_sigma_for_ksize(115)), flat, atol=1e-3)


def test_palette_takes_each_bands_top_four_quantized_colours_in_order():
    image = np.zeros((64, 32, 3), np.uint8)
    palette_rows = []
    rng = np.random.default_rng(0)
    for band in range(4):
        colors = [bin_color(int(b)) for b in rng.choice(512, size=5, replace=False)]
        shares = [10, 8, 6, 5, 3]  # columns per colour, most frequent first (32 in all)
        columns = np.repeat(np.arange(5), shares)[:32]
        image[band * 16 : (band + 1) * 16] = np.array(colors, np.uint8)[columns][None]
        palette_rows.append(colors[:4])
    top = top_colors(torch.from_numpy(image.transpose(2, 0, 1).copy()))
    assert top.tolist() == palette_rows
    rendered = render_palette(torch.from_numpy(top)[None], 64, 32)[0]
    assert rendered.shape == (12, 64, 32)
    for band in range(4):
        for rank in range(4):
            assert (rendered[3 * rank : 3 * rank + 3, band * 16 : (band + 1) * 16] == torch.tensor(palette_rows[band][rank]).view(3, 1, 1)).all()


def test_histogram_hints_draw_colours_from_the_image_or_the_dataset():
    image = illustration(6)
    present = set(torch.nonzero(color_histogram(image[None])[0]).flatten().tolist())
    only_bin = 300
    dataset = np.zeros(512)
    dataset[only_bin] = 1
    context = SynthContext(dataset_histogram=dataset)
    sources = []
    for seed in range(400):
        params = draw_hint(np.random.default_rng(seed), DrawInput("k", image), context, ("histogram",))
        for patch in params["patches"]:
            sources.append(patch["source"])
            assert patch["bin"] == only_bin if patch["source"] == "dataset" else patch["bin"] in present
            assert patch["color"] == bin_color(patch["bin"])
    assert_share(sources.count("dataset"), len(sources), 0.5, "dataset share")
    hint = apply_hints(image[None], [params])[0]
    last = params["patches"][-1]
    y0, x0, y1, x1 = last["box"]
    assert (hint[:3, y0:y1, x0:x1] == torch.tensor(last["color"], dtype=torch.uint8).view(3, 1, 1)).all()
    assert (hint[3, y0:y1, x0:x1] == 255).all()


def test_no_hint_share_and_scheme_choice_follow_their_probabilities():
    sample = DrawInput("k", illustration(0, 64, 64))
    schemes = ("points", "patches", "cfid")
    names = [draw_hint(sample_rng(0, "t", str(i)), sample, CONTEXT, schemes, no_hint_share=0.5)["scheme"] for i in range(4000)]
    assert_share(names.count(NO_HINT), len(names), 0.5, "no-hint share")
    hinted = [n for n in names if n != NO_HINT]
    assert_fits(np.array([hinted.count(s) for s in schemes]), np.full(3, 1 / 3), "scheme choice")
    params = {"scheme": NO_HINT}
    assert not apply_hints(sample.image[None], [params]).any()


def test_mixed_batches_replay_each_sample_as_alone():
    images = torch.stack([illustration(s, 96, 96) for s in range(len(HINTS))])
    context = SynthContext(dataset_histogram=np.ones(512))
    params = [draw_hint(np.random.default_rng(i), DrawInput(str(i), images[i]), context, (name,)) for i, name in enumerate(HINTS)]
    batch = apply_hints(images, params)
    for i in range(len(params)):
        assert torch.equal(batch[i], apply_hints(images[i : i + 1], [params[i]])[0])


def test_bad_names_and_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="unknown hint scheme sparkles"):
        parse_hint_names("points,sparkles")
    with pytest.raises(ValueError, match="one parameter dict per image"):
        apply_hints(torch.zeros((2, 3, 8, 8), dtype=torch.uint8), [{"scheme": "none"}])
    with pytest.raises(ValueError, match="uint8"):
        apply_hints(torch.zeros((1, 3, 8, 8)), [{"scheme": "none"}])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_hints_agree_between_cpu_and_cuda():
    images = torch.stack([illustration(s, 128, 128) for s in range(len(HINTS))])
    context = SynthContext(dataset_histogram=np.ones(512))
    params = [draw_hint(np.random.default_rng(i), DrawInput(str(i), images[i]), context, (name,)) for i, name in enumerate(HINTS)]
    cpu = apply_hints(images, params)
    cuda = apply_hints(images.cuda(), params).cpu()
    assert (cpu.int() - cuda.int()).abs().max() <= 1
