"""Draft artifacts: spray strokes and radii against their distributions, paste/warp geometry, replay."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth.artifacts import apply_artifacts, draw_artifacts, parse_artifact_names
from synth.artifacts.paste import apply_paste_artifacts, draw_paste_artifacts
from synth.artifacts.spray import apply_spray_artifacts, draw_spray_artifacts, stroke_distance
from synth.artifacts.warp import apply_warp_artifacts
from synth.common import DrawInput, SynthContext
from tests.synth.stats import assert_fits, assert_uniform_integers
from tests.synth.test_hints import illustration


def test_spray_has_1_to_3_strokes_of_radius_16_to_64_with_a_colour_from_the_image():
    image = illustration(0, 96, 96)
    sample = DrawInput("k", image)
    draws = [draw_spray_artifacts(np.random.default_rng(i), sample, SynthContext()) for i in range(3000)]
    assert_uniform_integers([len(d["strokes"]) for d in draws], 1, 3, "spray strokes")
    strokes = [s for d in draws for s in d["strokes"]]
    assert_uniform_integers([s["radius"] for s in strokes], 16, 64, "spray radius")
    for stroke in strokes[:200]:
        y, x = stroke["color_from"]
        assert stroke["color"] == image[:, y, x].tolist()
        assert all(0 <= py <= 95 and 0 <= px <= 95 for py, px in stroke["points"])


def test_spray_changes_only_pixels_within_a_radius_of_its_strokes():
    image = illustration(1, 128, 128)
    params = draw_spray_artifacts(np.random.default_rng(3), DrawInput("k", image), SynthContext())
    out = apply_spray_artifacts(image[None], [params])[0]
    near = torch.zeros((128, 128), dtype=torch.bool)
    for stroke in params["strokes"]:
        near |= stroke_distance(stroke["points"], 128, 128, torch.device("cpu")) < stroke["radius"]
    changed = (out != image).any(dim=0)
    assert changed.any() and not (changed & ~near).any()
    # On the stroke itself the pixel moves towards the sprayed colour.
    stroke = params["strokes"][0]
    y, x = (round(v) for v in stroke["points"][0])
    color = torch.tensor(stroke["color"], dtype=torch.float32)
    assert (out[:, y, x].float() - color).abs().sum() <= (image[:, y, x].float() - color).abs().sum()


def test_paste_donors_are_the_other_images_drawn_uniformly_and_sides_16_to_128():
    keys = tuple(f"k{i}" for i in range(5))
    sample = DrawInput("k2", torch.zeros((3, 256, 256), dtype=torch.uint8))
    pastes = [p for i in range(3000) for p in draw_paste_artifacts(np.random.default_rng(i), sample, SynthContext(donor_keys=keys))["pastes"]]
    donors = [p["donor"] for p in pastes]
    assert "k2" not in donors
    assert_fits(np.array([donors.count(k) for k in keys if k != "k2"]), np.full(4, 0.25), "donor choice")
    assert_uniform_integers([p["size"][0] for p in pastes], 16, 128, "paste height")
    assert_uniform_integers([p["size"][1] for p in pastes], 16, 128, "paste width")
    alone = draw_paste_artifacts(np.random.default_rng(0), sample, SynthContext(donor_keys=("k2",)))
    assert {p["donor"] for p in alone["pastes"]} == {"k2"}


def test_an_undistorted_paste_copies_the_donor_rectangle_exactly():
    image, donor = illustration(2), illustration(3)
    paste = {"donor": "d", "source": [71.5 / 127, 40.5 / 127], "target": [10, 20], "size": [16, 16], "angle": 0.0, "scale": 1.0, "mirror": False}
    out = apply_paste_artifacts(image[None], [{"pastes": [paste]}], {"d": donor})[0]
    assert torch.equal(out[:, 10:26, 20:36], donor[:, 64:80, 33:49])
    outside = torch.ones((128, 128), dtype=torch.bool)
    outside[10:26, 20:36] = False
    assert torch.equal(out[:, outside], image[:, outside])
    mirrored = apply_paste_artifacts(image[None], [{"pastes": [{**paste, "mirror": True}]}], {"d": donor})[0]
    assert torch.equal(mirrored[:, 10:26, 20:36], donor[:, 64:80, 33:49].flip(-1))


def test_a_constant_warp_shifts_the_image_by_its_displacement():
    image = illustration(4)
    params = {"amplitude": 3.0, "displacement": [[[0.0] * 4] * 4, [[3.0] * 4] * 4], "sigma": 0.01}
    out = apply_warp_artifacts(image[None], [params])[0]
    # Source x = x + 3: the output at column x is the input at column x + 3 (border repeated).
    assert torch.equal(out[:, :, :-3], image[:, :, 3:])


def test_drafts_replay_from_their_parameters_and_depend_on_the_draws():
    images = torch.stack([illustration(s, 96, 96) for s in range(3)])
    keys = ("a", "b", "c")
    context = SynthContext(donor_keys=keys)
    names = parse_artifact_names("spray,paste,warp")
    assert names == ("paste", "warp", "spray")
    params = [draw_artifacts(np.random.default_rng(i), DrawInput(k, images[i]), context, names) for i, k in enumerate(keys)]
    donors = dict(zip(keys, images))
    first = apply_artifacts(images, params, donors)
    assert torch.equal(first, apply_artifacts(images, params, donors))
    assert torch.equal(first[1], apply_artifacts(images[1:2], params[1:2], donors)[0])
    assert (first != images).any(dim=1).float().mean() > 0.05
    other = [draw_artifacts(np.random.default_rng(100 + i), DrawInput(k, images[i]), context, names) for i, k in enumerate(keys)]
    assert not torch.equal(first, apply_artifacts(images, other, donors))


def test_bad_artifact_names_and_missing_donors_are_clear_errors():
    with pytest.raises(ValueError, match="unknown artifact smudge"):
        parse_artifact_names("paste,smudge")
    assert parse_artifact_names("none") == ()
    image = illustration(0, 64, 64)[None]
    params = draw_artifacts(np.random.default_rng(0), DrawInput("a", image[0]), SynthContext(donor_keys=("a", "b")), ("paste",))
    with pytest.raises(KeyError, match="donor image b"):
        apply_artifacts(image, [params], {"a": image[0]})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_drafts_agree_between_cpu_and_cuda():
    images = torch.stack([illustration(s, 128, 128) for s in range(3)])
    keys = ("a", "b", "c")
    context = SynthContext(donor_keys=keys)
    params = [draw_artifacts(np.random.default_rng(i), DrawInput(k, images[i]), context, ("paste", "warp", "spray")) for i, k in enumerate(keys)]
    cpu = apply_artifacts(images, params, dict(zip(keys, images)))
    cuda_images = images.cuda()
    cuda = apply_artifacts(cuda_images, params, dict(zip(keys, cuda_images))).cpu()
    difference = (cpu.int() - cuda.int()).abs()
    assert difference.max() <= 2 and difference.float().mean() < 0.05


def test_near_hints_errors_are_centred_on_hint_pixels_and_off_leaves_the_draws_as_they_were():
    """Xu's thesis sec. 5.2.2: the draft errors a refinement learns to fix sit where users give hints."""
    sample = DrawInput("k", illustration(2, 256, 256))
    points = np.array([[40, 200], [41, 200], [180, 60]])
    near = SynthContext(donor_keys=("a", "b"), hint_points=points)
    for seed in range(300):
        pastes = draw_paste_artifacts(np.random.default_rng(seed), sample, near)["pastes"]
        for paste in pastes:
            (y0, x0), (h, w) = paste["target"], paste["size"]
            # The box holds a hint pixel, centred on it unless the image edge pushed it.
            assert any(y0 <= y < y0 + h and x0 <= x < x0 + w for y, x in points)
        for stroke in draw_spray_artifacts(np.random.default_rng(seed), sample, near)["strokes"]:
            assert tuple(int(v) for v in stroke["points"][0]) in {tuple(p) for p in points}
    # The draws where both hint groups lie: both are aimed at, in proportion to their pixels.
    starts = [tuple(int(v) for v in s["points"][0]) for seed in range(600) for s in draw_spray_artifacts(np.random.default_rng(seed), sample, near)["strokes"]]
    share = sum(y > 100 for y, _ in starts) / len(starts)
    assert 0.25 < share < 0.42  # 1 of the 3 hint pixels
    # Without hint points (or with none given) the draws are exactly the uniform ones of before.
    for context in (SynthContext(donor_keys=("a", "b")), SynthContext(donor_keys=("a", "b"), hint_points=np.zeros((0, 2), int))):
        assert draw_artifacts(np.random.default_rng(5), sample, context, ("paste", "warp", "spray")) == draw_artifacts(
            np.random.default_rng(5), sample, SynthContext(donor_keys=("a", "b")), ("paste", "warp", "spray"))
