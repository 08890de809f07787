"""The streaming loader: every sample once per epoch with 0 and 2 workers, rank splitting, resampled
epochs, float conversion on the device, and on-device re-synthesis."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipeline.cli import main
from tests.helpers import make_prepared_dataset
from train.jpeg_device import jpeg_on_device
from train.loader import LoaderConfig, decode_scale, make_loader, shard_urls, to_device

COUNT = 30


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("loader") / "root"
    make_prepared_dataset(root, COUNT, size=64)
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0
    assert main(["shard", str(root), "--hints", "patches,palette", "--val", "0", "--shard-samples", "4", "--workers", "0"]) == 0
    return root / "shards" / "train"


def epoch_keys(config: LoaderConfig) -> list[str]:
    return [key for batch in make_loader(config) for key in batch["__key__"]]


@pytest.mark.parametrize("workers", [0, 2])
def test_one_epoch_delivers_every_sample_once_as_uint8_batches(shards, workers):
    config = LoaderConfig(shards=(str(shards),), batch_size=4, workers=workers, with_palette=True)
    keys, batches = [], list(make_loader(config))
    for batch in batches:
        keys += batch["__key__"]
        b = len(batch["__key__"])
        assert batch["color"].shape == (b, 3, 64, 64) and batch["color"].dtype == torch.uint8
        assert batch["line"].shape == (b, 1, 64, 64) and batch["hint"].shape == (b, 4, 64, 64)
        assert batch["draft"].shape == (b, 3, 64, 64) and batch["palette"].shape == (b, 4, 4, 3)
        assert [m["key"] for m in batch["meta"]] == batch["__key__"]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == COUNT


def test_shard_order_and_sample_order_are_shuffled(shards):
    ordered = epoch_keys(LoaderConfig(shards=(str(shards),), workers=0, shuffle_buffer=0, shuffle_shards=False))
    shuffled = epoch_keys(LoaderConfig(shards=(str(shards),), workers=0, shuffle_buffer=100, seed=1))
    assert sorted(ordered) == sorted(shuffled) and ordered != shuffled
    assert ordered == sorted(ordered), "pipe shard packs keys in order"


def test_ranks_read_disjoint_shards_that_together_cover_the_dataset(shards, monkeypatch):
    per_rank = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        per_rank.append(set(epoch_keys(LoaderConfig(shards=(str(shards),), workers=0, shuffle_shards=False))))
    assert per_rank[0] and per_rank[1] and not per_rank[0] & per_rank[1]
    assert len(per_rank[0] | per_rank[1]) == COUNT


def test_resampled_epochs_have_the_requested_length(shards):
    config = LoaderConfig(shards=(str(shards),), batch_size=4, workers=2, resampled=True, epoch_samples=40)
    loader = make_loader(config)
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == 10 and all(len(b["__key__"]) == 4 for b in batches)
    with pytest.raises(ValueError, match="epoch_samples"):
        LoaderConfig(shards=(str(shards),), resampled=True)
    with pytest.raises(ValueError, match="not both"):
        LoaderConfig(shards=(str(shards),), resampled=True, repeat=True, epoch_samples=8)


def test_repeated_epochs_give_every_rank_equal_steps_on_disjoint_samples(shards, monkeypatch):
    seen, steps = [], []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        config = LoaderConfig(shards=(str(shards),), batch_size=4, workers=0, repeat=True, epoch_samples=48, shuffle_buffer=0)
        batches = list(make_loader(config))
        steps.append(len(batches))
        seen.append({key for batch in batches for key in batch["__key__"]})
    assert steps == [12, 12]
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == COUNT


def test_to_device_gives_floats_in_0_1_and_a_12_channel_palette(shards):
    batch = next(iter(make_loader(LoaderConfig(shards=(str(shards),), batch_size=3, workers=0, with_palette=True))))
    moved = to_device(batch, "cpu")
    assert moved["color"].dtype == torch.float32 and torch.equal(moved["color"] * 255, batch["color"].float())
    assert moved["palette"].shape == (3, 12, 64, 64)
    assert torch.equal((moved["palette"][:, :3, 0, 0] * 255).round(), batch["palette"][:, 0, 0].float())


def test_shard_urls_take_folders_globs_and_braces_and_skip_unfinished(shards, tmp_path):
    folder = tmp_path / "train"
    shutil.copytree(shards, folder)
    (folder / "00042.tar").write_bytes(b"")  # no done-marker: a run in progress
    finished = shard_urls(str(folder))
    assert len(finished) == len(list(shards.glob("*.tar"))) and str(folder / "00042.tar") not in finished
    assert len(shard_urls(str(folder / "*.tar"))) == len(finished) + 1
    assert shard_urls(str(folder / "{00000..00001}.tar")) == [str(folder / "00000.tar"), str(folder / "00001.tar")]
    with pytest.raises(FileNotFoundError, match="pipe shard"):
        shard_urls(str(tmp_path / "empty*.tar"))





def test_unwanted_members_are_not_decoded(shards):
    config = LoaderConfig(shards=(str(shards),), batch_size=4, workers=0, images=("color", "line"))
    batch = next(iter(make_loader(config)))
    assert {"color", "line"} <= set(batch) and not {"hint", "draft", "palette"} & set(batch)
    with pytest.raises(ValueError, match="must include color"):
        LoaderConfig(shards=(str(shards),), images=("line",))


def test_a_repeated_stream_skips_to_a_resumed_position_exactly(shards):
    for workers in (0, 2):
        base = dict(shards=(str(shards),), batch_size=3, workers=workers, repeat=True, shuffle_buffer=8, seed=4)
        epochs = make_loader(LoaderConfig(**base, epoch_samples=15))
        whole = [b["__key__"] for _ in range(4) for b in epochs]  # 4 epochs of 5 batches, one stream
        assert len(whole) == 20 and len({tuple(k) for k in whole[:10]}) == 10
        assert whole[:10] != whole[10:20], "later epochs continue the stream rather than restart it"
        resumed = make_loader(LoaderConfig(**base, epoch_samples=9 * 3, skip_batches=11))
        assert [b["__key__"] for b in resumed] == whole[11:20]


def test_an_endless_stream_with_more_workers_than_shards_does_not_hang(shards, tmp_path):
    import shutil as _shutil

    folder = tmp_path / "one"
    folder.mkdir()
    for name in ("00000.tar", "00000_stats.json"):
        _shutil.copy(shards / name, folder / name)
    config = LoaderConfig(shards=(str(folder),), batch_size=2, workers=3, repeat=True, epoch_samples=12)
    batches = list(make_loader(config))
    assert len(batches) == 6


@pytest.fixture(scope="module")
def jpeg_shards(shards) -> Path:
    """The same dataset sharded again with JPEG colour and drafts."""
    root = shards.parents[2] / "jpeg"
    shutil.copytree(shards.parents[1], root, ignore=shutil.ignore_patterns("shards", "shards.parquet", ".pipe"))
    assert main(["shard", str(root), "--hints", "patches", "--val", "0", "--shard-samples", "4", "--workers", "0", "--jpeg", "color,draft"]) == 0
    return root / "shards" / "train"


def test_decode_scale_is_the_largest_reduction_that_keeps_the_decode_size():
    assert decode_scale((512, 512), None) == 1
    assert decode_scale((512, 512), 256) == 2 and decode_scale((512, 512), 200) == 2
    assert decode_scale((512, 512), 64) == 8 and decode_scale((512, 512), 257) == 1
    assert decode_scale((300, 500), 150) == 2  # sides round up, as reduced JPEG decoding rounds them
    assert decode_scale((301, 500), 77) == 2 and decode_scale((301, 500), 76) == 4  # ceil(301 / 4) = 76


def test_reduced_decoding_matches_the_area_resize_of_the_full_image(shards, jpeg_shards):
    """Dense members at half size: PNG area-resized exactly, JPEG from the DCT within a few levels; hints whole."""
    full = {k: b for k, b in zip(*_first_batch(shards, None))}
    for folder, tolerance in ((shards, 0.0), (jpeg_shards, 4.0)):
        keys, batch = _first_batch(folder, 32)
        assert batch["color"].shape[-2:] == (32, 32) and batch["line"].shape[-2:] == (32, 32)
        assert batch["hint"].shape[-2:] == (64, 64)  # sparse: resized on the device by resize_hint
        for index, key in enumerate(keys):
            for name in ("color", "line"):
                whole = full[key][name].permute(1, 2, 0).numpy()
                expected = cv2.resize(whole, (32, 32), interpolation=cv2.INTER_AREA).reshape(32, 32, -1)
                got = batch[name][index].permute(1, 2, 0).numpy().astype(float)
                error = np.abs(got - expected).mean()
                assert error <= tolerance, (folder, name, error)


def _first_batch(folder: Path, decode_size: int | None) -> tuple[list[str], dict]:
    config = LoaderConfig(shards=(str(folder),), batch_size=8, workers=0, shuffle_buffer=0, shuffle_shards=False, images=("color", "line", "hint"), decode_size=decode_size)
    batch = next(iter(make_loader(config)))
    if decode_size is None:
        return batch["__key__"], [{name: batch[name][i] for name in ("color", "line")} for i in range(len(batch["__key__"]))]
    return batch["__key__"], batch


def test_jpeg_members_can_go_to_the_device_undecoded(jpeg_shards):
    config = LoaderConfig(shards=(str(jpeg_shards),), batch_size=4, workers=0, shuffle_buffer=0, images=("color", "line"), jpeg_on_device=True)
    batch = next(iter(make_loader(config)))
    assert "color" not in batch and len(batch["color_jpeg"]) == 4 and batch["line"].shape == (4, 1, 64, 64)
    decoded = cv2.imdecode(batch["color_jpeg"][0].numpy(), cv2.IMREAD_COLOR)
    assert decoded.shape == (64, 64, 3)  # the member's own bytes, for torchvision's decode_jpeg on the GPU


def test_the_jpeg_decoder_choice_is_checked_against_the_device():
    cpu = torch.device("cpu")
    assert jpeg_on_device("auto", cpu) is False and jpeg_on_device("opencv", cpu) is False
    with pytest.raises(ValueError, match="needs a CUDA device"):
        jpeg_on_device("nvjpeg", cpu)
    with pytest.raises(ValueError, match="choose from auto, opencv, nvjpeg"):
        jpeg_on_device("pillow", cpu)
