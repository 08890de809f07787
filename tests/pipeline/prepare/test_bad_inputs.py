"""The issue's folder of awkward inputs: every one gets the right row and the run goes on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import picture, rows_by_name, run_prepare, write_bad_inputs


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    expected = write_bad_inputs(folder / "src")
    report, table = run_prepare(folder / "src", folder / "root")
    return expected, rows_by_name(table), folder / "root"


def test_every_input_gets_the_expected_status_and_reason(bad_run):
    expected, rows, _ = bad_run
    assert set(rows) == set(expected)
    got = {name: (row["status"], row["reason"]) for name, row in rows.items()}
    assert got == expected


def test_non_images_are_described(bad_run):
    _, rows, _ = bad_run
    assert rows["empty.jpg"]["detail"] == "empty file (0 bytes)"
    assert "HTML" in rows["error.png"]["detail"]
    assert rows["notes.jpg"]["detail"] == "text, not an image"
    assert "truncated" in rows["truncated.jpg"]["detail"]


def test_bomb_is_refused_from_its_header(bad_run):
    _, rows, _ = bad_run
    bomb = rows["bomb.png"]
    assert (bomb["orig_width"], bomb["orig_height"]) == (30000, 30000)
    assert "900,000,000 pixels" in bomb["detail"]


def _output(root: Path, row: dict) -> np.ndarray:
    image = cv2.imread(str(root / row["path"]), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.shape == (512, 512, 3) and image.dtype == np.uint8
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _center_512(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return cv2.resize(rgb[top : top + side, left : left + side], (512, 512), interpolation=cv2.INTER_AREA)


def test_cmyk_and_16_bit_keep_their_colours(bad_run):
    _, rows, root = bad_run
    for name, seed in (("cmyk.jpg", 2), ("deep.png", 3)):
        difference = np.abs(_output(root, rows[name]).astype(int) - _center_512(picture(seed)))
        assert difference.mean() < 4, name


def test_alpha_is_composited_over_white(bad_run):
    _, rows, root = bad_run
    out = _output(root, rows["alpha.png"])
    # The 600x600 centre square starts at x=50; the transparent half ends at x=350, i.e. 300/600 of it.
    assert (out[:, :250] == 255).all()
    assert out[:, 262:].std() > 20  # the opaque half kept its picture


def test_animated_gif_uses_its_first_frame(bad_run):
    _, rows, root = bad_run
    row = rows["animated.gif"]
    assert row["frames"] == 3
    out = _output(root, row).astype(int)
    errors = [np.abs(out - _center_512(picture(seed))).mean() for seed in (5, 6, 7)]
    assert errors[0] < 8 and errors[0] < min(errors[1:]) / 3


def test_memory_stays_bounded_in_a_real_run(tmp_path):
    """The CLI over the whole folder, in worker processes: a decoded 30000x30000 would need 2.7 GB."""
    write_bad_inputs(tmp_path / "src")
    # Measured from a small launcher process: a child forked from this (large) test process would
    # count this process's own pages in its peak before it execs.
    launcher = (
        "import resource, subprocess, sys; "
        "code = subprocess.run(sys.argv[1:], capture_output=True).returncode; "
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    command = [sys.executable, "-m", "pipeline.cli", "prepare", str(tmp_path / "src"), str(tmp_path / "root"), "--workers", "2"]
    result = subprocess.run([sys.executable, "-c", launcher, *command], capture_output=True, text=True, timeout=300)
    code, peak_kib = (int(value) for value in result.stdout.split())
    assert code == 0, result.stderr
    assert peak_kib < 600 * 1024, f"a process peaked at {peak_kib / 1024:.0f} MiB"
