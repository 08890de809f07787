"""`pipe fid DIR_A DIR_B`: the same PNG folders (299 x 299, where no resize happens, and 512 x 512)
scored by pipe under each --fid-impl and by the package it follows, on one stand-in weights file in
pytorch-fid's layout that the packages find in their caches or load paths (nothing is downloaded):
the default equals torch-fidelity, --fid-impl pytorch-fid equals pytorch-fid, --fid-impl clean equals
clean-fid, each within 1e-4 relative. Then the one-line errors, the skipped unreadable image, and the
feature cache."""

from __future__ import annotations

import os
import re

import cv2
import numpy as np
import pytest
import torch

import pipeline.commands.fid  # noqa: F401 - registers `pipe fid` on the app
from extractors.weights import WEIGHTS_ENV
from pipeline.cli import main
from tests.train.fid_references import PYTORCH_FID_FILE, clean_fid_extractor, no_downloads, pytorch_fid_cache, reference, sample_images, write_weights
from train.metrics.frechet import frechet_distance, gaussian_stats

SIZES = (299, 512)
COUNT = 5  # images per folder: FID and KID need 2, the comparison needs nothing more
TOLERANCE = 1e-4


def write_folder(folder, images: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        assert cv2.imwrite(str(folder / f"{i:03d}.png"), np.ascontiguousarray(image[..., ::-1]))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("fid")
    weights = write_weights(base / "weights")
    folders = {}
    for size in SIZES:
        for side, variant in (("a", 0), ("b", 1)):
            folders[side, size] = base / f"{side}{size}"
            write_folder(folders[side, size], sample_images(size + variant, COUNT, size, variant))
    return {"base": base, "weights": weights, "folders": folders}


def fid_args(data: dict, size: int, *extra: str) -> list[str]:
    return ["fid", str(data["folders"]["a", size]), str(data["folders"]["b", size]), "--weights-dir", str(data["weights"].parent),
            "--device", "cpu", "--workers", "2", *extra]


def parse(out: str) -> dict:
    numbers = {"impl": re.search(r"^fid-impl: (\S+)", out, re.M).group(1), "fid": float(re.search(r"^FID: (\S+)", out, re.M).group(1))}
    kid = re.search(r"^KID: (\S+) ± (\S+) \((\d+) subsets of (\d+)\)", out, re.M)
    if kid:
        numbers["kid"], numbers["kid_subset_size"] = float(kid.group(1)), int(kid.group(4))
    return numbers


@pytest.fixture(scope="module")
def pipe_scores(data) -> dict:
    """pipe fid's output for every size and implementation, with KID over the whole sets."""
    scores = {}
    for size in SIZES:
        for impl in ("tf", "pytorch-fid", "clean"):
            scores[size, impl] = run_pipe_fid(fid_args(data, size, "--fid-impl", impl, "--kid"))
    return scores


def run_pipe_fid(args: list[str]) -> dict:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    assert code == 0, err.getvalue()
    return {**parse(out.getvalue()), "out": out.getvalue(), "err": err.getvalue()}


def close(ours: float, theirs: float) -> bool:
    return abs(ours - theirs) <= TOLERANCE * abs(theirs)


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
def test_default_equals_torch_fidelity(size, data, pipe_scores):
    """torch-fidelity end to end (its file listing, PIL decoding, its resize, its FID and KID)."""
    torch_fidelity = reference("torch_fidelity")
    ours = pipe_scores[size, "tf"]
    assert ours["impl"] == "tf" and "torch-fidelity" in ours["out"]
    theirs = torch_fidelity.calculate_metrics(
        input1=str(data["folders"]["a", size]), input2=str(data["folders"]["b", size]), fid=True, kid=True, kid_subset_size=COUNT,
        cuda=False, cache=False, verbose=False, save_cpu_ram=True, feature_extractor_weights_path=str(data["weights"]))
    assert theirs["frechet_inception_distance"] > 10  # two different sets, features not degenerate
    assert close(ours["fid"], theirs["frechet_inception_distance"]), (ours["fid"], theirs["frechet_inception_distance"])
    assert ours["kid_subset_size"] == COUNT and close(ours["kid"], theirs["kernel_inception_distance_mean"])


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
def test_pytorch_fid_impl_equals_pytorch_fid(size, data, pipe_scores, tmp_path, monkeypatch):
    """pytorch-fid's own pipeline (file listing, PIL decoding, ToTensor, DataLoader, its network with
    its resize and 2x - 1) gives the activations; the Frechet distance of its statistics is taken
    exactly here (its scipy sqrtm costs 10 s a call: the slow test below runs that too)."""
    fid_score = reference("pytorch_fid.fid_score")
    pytorch_fid_cache(monkeypatch, tmp_path / "torch")
    model = fid_score.InceptionV3([fid_score.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    activations = [fid_score.get_activations(sorted(data["folders"][side, size].glob("*.png")), model, batch_size=5, device="cpu", num_workers=0)
                   for side in ("a", "b")]
    theirs = frechet_distance(gaussian_stats(activations[0]), gaussian_stats(activations[1]))
    ours = pipe_scores[size, "pytorch-fid"]
    assert ours["impl"] == "pytorch-fid"
    assert close(ours["fid"], theirs), (ours["fid"], theirs)
    assert not close(pipe_scores[size, "tf"]["fid"], theirs)  # the default is another implementation


@pytest.mark.parametrize("size", SIZES)
def test_clean_impl_equals_clean_fid(size, data, pipe_scores, tmp_path, monkeypatch):
    """clean-fid's folder features in its default mode (its file listing, PIL decoding, its float
    bicubic resize, its (x - 128) / 128), through a TorchScript file built from the same weights
    (its published network is NVIDIA's TorchScript file, which no state dict can rebuild)."""
    fid = reference("cleanfid.fid")
    no_downloads(monkeypatch)
    extractor = clean_fid_extractor(tmp_path / "cleanfid")
    features = [fid.get_folder_features(str(data["folders"][side, size]), lambda x: extractor(x), num_workers=0, batch_size=5,
                                        device=torch.device("cpu"), mode="clean", verbose=False) for side in ("a", "b")]
    theirs = frechet_distance(gaussian_stats(features[0]), gaussian_stats(features[1]))
    ours = pipe_scores[size, "clean"]
    assert ours["impl"] == "clean"
    assert close(ours["fid"], theirs), (ours["fid"], theirs)
    if size == 299:  # no resize: clean and tf prepare the image the same way
        assert pipe_scores[size, "tf"]["fid"] == ours["fid"]
    else:
        assert not close(pipe_scores[size, "tf"]["fid"], theirs)


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
def test_whole_reference_pipelines_with_their_own_frechet_distances(size, data, pipe_scores, tmp_path, monkeypatch):
    """pytorch-fid's calculate_fid_given_paths and clean-fid's compute_fid, their scipy sqrtm included."""
    fid_score, cleanfid = reference("pytorch_fid.fid_score"), reference("cleanfid.fid")
    pytorch_fid_cache(monkeypatch, tmp_path / "torch")
    folders = [str(data["folders"][side, size]) for side in ("a", "b")]
    theirs = fid_score.calculate_fid_given_paths(folders, batch_size=5, device="cpu", dims=2048, num_workers=0)
    assert close(pipe_scores[size, "pytorch-fid"]["fid"], theirs), (pipe_scores[size, "pytorch-fid"]["fid"], theirs)
    extractor = clean_fid_extractor(tmp_path / "cleanfid")
    theirs = cleanfid.compute_fid(*folders, mode="clean", custom_feat_extractor=lambda x: extractor(x), num_workers=0, batch_size=5,
                                  device=torch.device("cpu"), verbose=False, use_dataparallel=False)
    assert close(pipe_scores[size, "clean"]["fid"], theirs), (pipe_scores[size, "clean"]["fid"], theirs)


def test_output_names_the_implementation_and_the_counts(data, pipe_scores):
    out, err = pipe_scores[512, "pytorch-fid"]["out"], pipe_scores[512, "pytorch-fid"]["err"]
    assert out.splitlines()[0].startswith("fid-impl: pytorch-fid (x / 255, torch bilinear interpolate")
    assert f"images: {COUNT} in {data['folders']['a', 512]}, {COUNT} in {data['folders']['b', 512]}" in out
    assert f"{COUNT} images is fewer than the 2048 feature dimensions" in err


def one_line_error(capsys, args: list[str]) -> str:
    """The error line (the last one; before it at most the progress lines of images already read)."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0] and "Traceback" not in err, err
    return errors[0]


def test_errors_are_one_line(data, tmp_path, monkeypatch, capsys):
    a = str(data["folders"]["a", 299])
    weights = ["--weights-dir", str(data["weights"].parent), "--device", "cpu"]
    assert f"{tmp_path / 'nowhere'} not found" in one_line_error(capsys, ["fid", a, str(tmp_path / "nowhere"), *weights])
    (tmp_path / "file.png").write_bytes(b"x")
    assert "is not a folder" in one_line_error(capsys, ["fid", str(tmp_path / "file.png"), a, *weights])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    assert "holds no images" in one_line_error(capsys, ["fid", a, str(tmp_path / "empty"), *weights])
    assert "--fid-impl must be one of: tf, pytorch-fid, clean" in one_line_error(capsys, ["fid", a, a, "--fid-impl", "inception", *weights])
    # The default weights folder without the file: the file and how to get it.
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "no-weights"))
    err = one_line_error(capsys, ["fid", a, a, "--device", "cpu"])
    assert PYTORCH_FID_FILE in err and "`pipe weights fetch inception`" in err
    err = one_line_error(capsys, ["fid", a, a, "--device", "cpu", "--weights-dir", str(tmp_path / "empty")])
    assert f"{PYTORCH_FID_FILE} missing in {tmp_path / 'empty'}" in err and "`pipe weights fetch inception`" in err
    # One readable image: FID needs two.
    write_folder(tmp_path / "one", sample_images(3, 1, 64))
    (tmp_path / "one" / "broken.png").write_bytes(b"\x89PNG not really")
    err = one_line_error(capsys, ["fid", a, str(tmp_path / "one"), *weights])
    assert "holds 1 readable image (1 unreadable): FID needs at least 2" in err


def test_unreadable_images_are_skipped_and_counted(data, tmp_path, capsys):
    folder = tmp_path / "mixed"
    write_folder(folder, sample_images(5, 3, 120))
    (folder / "truncated.png").write_bytes((folder / "000.png").read_bytes()[:200])
    (folder / "zzz.jpg").write_bytes(b"not a jpeg")
    capsys.readouterr()
    assert main(["fid", str(data["folders"]["a", 299]), str(folder), "--weights-dir", str(data["weights"].parent), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert re.search(r"skipped 2 unreadable images \(first: truncated\.png: ", captured.err.replace("\n", " "))
    assert f"images: {COUNT} in {data['folders']['a', 299]}, 3 in {folder}" in captured.out


@pytest.mark.slow
def test_features_are_cached_per_folder_and_invalidated_by_a_change(data, tmp_path, monkeypatch):
    from pipeline.eval.fid_folders import CACHE_ENV, folder_features
    from train.metrics.inception_features import InceptionFeatures
    from train.networks.inception import load_fid_inception

    a, b = tmp_path / "a", tmp_path / "b"
    write_folder(a, sample_images(7, 3, 96))
    write_folder(b, sample_images(8, 3, 96, variant=1))
    cache = tmp_path / "cache"
    args = ["fid", str(a), str(b), "--weights-dir", str(data["weights"].parent), "--device", "cpu", "--cache-dir", str(cache)]
    first = run_pipe_fid(args)
    assert "from the cache" not in first["out"] and len(list(cache.glob("*.npz"))) == 2
    again = run_pipe_fid(args)
    assert "(features of A and B from the cache)" in again["out"] and again["fid"] == first["fid"]
    # Another implementation is another entry; a touched file invalidates its folder's entry only.
    network = load_fid_inception(data["weights"])
    tf, clean = (InceptionFeatures(network, "cpu", 8, impl) for impl in ("tf", "clean"))
    assert folder_features(a, tf, data["weights"], cache_dir=cache).cached
    assert not folder_features(a, clean, data["weights"], cache_dir=cache).cached
    stat = (b / "001.png").stat()
    os.utime(b / "001.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert folder_features(a, tf, data["weights"], cache_dir=cache).cached
    recomputed = folder_features(b, tf, data["weights"], cache_dir=cache)
    assert not recomputed.cached and recomputed.names == ["000.png", "001.png", "002.png"]
    assert folder_features(b, tf, data["weights"], cache_dir=cache).cached
    # --cache uses $PIPE_FID_CACHE (default ~/.cache/pipe/fid-features); without --cache / --cache-dir nothing is read.
    monkeypatch.setenv(CACHE_ENV, str(cache))
    assert "(features of A and B from the cache)" in run_pipe_fid([*args[:-2], "--cache"])["out"]
    assert "from the cache" not in run_pipe_fid(args[:-2])["out"]
