"""Checkpoints load as weights alone (a file cannot run code), carry a checksum (a changed bit is refused,
never loaded as other weights), say "damaged" in one line when cut short or incomplete, survive a full
disk with the previous file intact, and restore every random generator exactly."""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from train.checkpoint import FORMAT, LEGACY_FORMAT, load_checkpoint, read_checkpoint, save_checkpoint, write_payload
from train.checkpoint_file import TRAILER_TAG


class WritesMarker:
    """Unpickling this object writes `marker`: what a hostile .pt could do (os.system, a downloader...)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def hostile_files(folder: Path, marker: Path) -> dict[str, Path]:
    """Each way a hostile file can look: a torch zip claiming the old format, the same zip with a forged
    pipe checksum trailer (so only weights-only loading stands between it and its code), a bare pickle."""
    folder.mkdir(parents=True, exist_ok=True)
    claims = {"format": LEGACY_FORMAT, "step": 1, "state": {}, "rng": {}, "extras": {}, "payload": WritesMarker(marker)}
    torch.save(claims, folder / "old-format.pt")
    forged = {**claims, "format": FORMAT}
    torch.save(forged, folder / "forged.pt")
    body = (folder / "forged.pt").read_bytes()
    (folder / "forged.pt").write_bytes(body + TRAILER_TAG + hashlib.sha256(body).hexdigest().encode() + b"\n")
    (folder / "bare.pkl").write_bytes(pickle.dumps({"format": FORMAT, "payload": WritesMarker(marker)}))
    return {name: folder / file for name, file in (("old-format", "old-format.pt"), ("forged", "forged.pt"), ("bare", "bare.pkl"))}


@pytest.fixture
def small_checkpoint(tmp_path) -> Path:
    """A real checkpoint of a small convolutional model and its Adam optimizer after one step."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 16, 16)).mean().backward()
    optimizer.step()
    path = tmp_path / "last.pt"
    save_checkpoint(path, 7, {"generator": model, "opt_g": optimizer}, {"config": {"recipe": "xu2020", "stage": "draft"}})
    return path


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert len(message.splitlines()) == 1, message
    return message


def test_a_checkpoint_loads_as_weights_alone(small_checkpoint):
    payload = torch.load(small_checkpoint, weights_only=True)  # plain torch can read it, without full unpickling
    assert payload["format"] == FORMAT == "pipe.checkpoint/2" and payload["step"] == 7
    assert read_checkpoint(small_checkpoint)["extras"] == {"config": {"recipe": "xu2020", "stage": "draft"}}


@pytest.mark.parametrize("kind", ["old-format", "forged", "bare"])
def test_a_hostile_file_runs_no_code_and_is_refused_in_one_line(tmp_path, kind):
    marker = tmp_path / "marker"
    path = hostile_files(tmp_path / "files", marker)[kind]
    with pytest.raises(ValueError) as exc:
        read_checkpoint(path)
    assert str(path) in one_line(exc)
    assert not marker.exists()
    if kind == "old-format":
        assert f"pipe weights convert-checkpoint {path}" in str(exc.value)
    # The files are really hostile: full unpickling runs their code.
    torch.load(path, weights_only=False) if kind != "bare" else pickle.loads(path.read_bytes())
    assert marker.read_text() == "code ran"


def test_20_random_bit_flips_are_each_refused_as_damaged(small_checkpoint):
    data = small_checkpoint.read_bytes()
    draw = random.Random(2026)
    for _ in range(20):
        bit = draw.randrange(len(data) * 8)
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        small_checkpoint.write_bytes(bytes(flipped))
        with pytest.raises(ValueError) as exc:
            read_checkpoint(small_checkpoint)
        message = one_line(exc)
        assert str(small_checkpoint) in message and "damaged" in message, (bit, message)


def test_a_changed_weight_byte_says_checksum_mismatch(small_checkpoint):
    data = bytearray(small_checkpoint.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the tensors' data: torch alone would load other weights
    small_checkpoint.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="is damaged: checksum mismatch"):
        read_checkpoint(small_checkpoint)


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_a_truncated_checkpoint_is_damaged_not_foreign(small_checkpoint, keep):
    data = small_checkpoint.read_bytes()
    small_checkpoint.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError) as exc:
        read_checkpoint(small_checkpoint)
    assert f"{small_checkpoint} is damaged (truncated or corrupted)" in one_line(exc)


@pytest.mark.parametrize("part", ["extras", "step", "state", "rng"])
def test_a_payload_missing_a_part_is_one_line(small_checkpoint, part):
    payload = read_checkpoint(small_checkpoint)
    del payload[part]
    write_payload(small_checkpoint, payload)
    with pytest.raises(ValueError) as exc:
        read_checkpoint(small_checkpoint)
    assert f"{small_checkpoint} is damaged: its payload has no {part}" == one_line(exc)


def test_random_generators_round_trip_exactly(tmp_path):
    random.gauss(0, 1), np.random.normal()  # both keep a cached second gaussian: it must survive too
    module = torch.nn.Linear(2, 2)
    save_checkpoint(tmp_path / "rng.pt", 1, {"m": module})
    expected = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.normal(), torch.rand(3).tolist())
    load_checkpoint(tmp_path / "rng.pt", {"m": module})
    assert (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.normal(), torch.rand(3).tolist()) == expected


def fail_fsync(fd: int) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def fail_torch_save(payload, target) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("failing", [("os.fsync", fail_fsync), ("torch.save", fail_torch_save)], ids=["fsync", "torch.save"])
def test_a_full_disk_names_the_checkpoint_and_keeps_the_previous_one(small_checkpoint, monkeypatch, failing):
    before = small_checkpoint.read_bytes()
    monkeypatch.setattr(*failing)
    with pytest.raises(OSError) as exc:
        save_checkpoint(small_checkpoint, 8, {"m": torch.nn.Linear(2, 2)})
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(small_checkpoint)
    assert exc.value.strerror == os.strerror(errno.ENOSPC)
    monkeypatch.undo()
    assert small_checkpoint.read_bytes() == before and read_checkpoint(small_checkpoint)["step"] == 7
    assert sorted(p.name for p in small_checkpoint.parent.iterdir()) == ["last.pt"]  # no temporary left


def test_saving_what_would_need_full_unpickling_fails_at_save_not_at_resume(small_checkpoint):
    before = small_checkpoint.read_bytes()
    with pytest.raises(TypeError, match=r"payload\['extras'\]\['loss'\] \(a numpy.float64\) would need full unpickling"):
        save_checkpoint(small_checkpoint, 8, {"m": torch.nn.Linear(2, 2)}, {"loss": np.float64(0.5)})
    assert small_checkpoint.read_bytes() == before
