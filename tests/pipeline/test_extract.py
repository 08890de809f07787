"""`pipe extract`: all CPU methods on 200 generated images, SIGKILL and resume, recorded parameters that
reproduce every file, per-sample draws against their distribution, bad inputs, options, weights errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from scipy import stats

from extractors.ldm import LdmConfig, LineDetectionModel, save_ldm
from extractors.methods import apply_lines
from pipeline.cli import main
from pipeline.extract.io import decode_prepared
from pipeline.extract.opencv_units import cpu_worker_environment
from pipeline.extract.plan import ExtractItem, prepared_images
from tests.helpers import make_prepared_dataset

CPU_METHODS = ["xdog", "dilate", "canny", "highpass", "gray"]
COUNT = 200


def _command(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "extract", str(root), "--method", ",".join(CPU_METHODS), *extra]


def _ledger(root: Path) -> list[dict]:
    return pq.read_table(root / "lines.parquet").to_pylist()


def _read_rgb(root: Path, relative: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(root / relative)), cv2.COLOR_BGR2RGB)


def _reproduce(root: Path, row: dict, networks: dict | None = None) -> np.ndarray:
    """Run the row's method alone on its image with its recorded parameters."""
    image = torch.from_numpy(_read_rgb(root, row["source_path"])).permute(2, 0, 1)[None].contiguous()
    return apply_lines(row["method"], image, [json.loads(row["params"])], networks)[0, 0].numpy()


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """200 images, all CPU methods, killed with SIGKILL part-way, then resumed to the end."""
    root = tmp_path_factory.mktemp("extract") / "root"
    make_prepared_dataset(root, COUNT, size=256)
    command = _command(root, "--workers", "2", "--batch-size", "8", "--save-every", "0.05")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    parts = root / ".pipe" / "parts" / "lines"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (parts.exists() and list(parts.glob("part-*.parquet"))):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (root / "lines.parquet").exists(), "the run finished before it could be killed"
    written_before = [path for path in (root / "lines").rglob("*") if path.is_file()]
    assert 0 < len(written_before) < COUNT * len(CPU_METHODS)
    # What the kill left in the lines tree is whole files only (temporaries live under .pipe/tmp).
    assert all(path.suffix == ".png" and cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is not None for path in written_before)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_every_image_and_method_has_exactly_one_row_and_one_file(finished):
    rows = _ledger(finished)
    assert len(rows) == COUNT * len(CPU_METHODS)
    assert len({row["line"] for row in rows}) == len(rows)
    assert {row["status"] for row in rows} == {"ok"}
    assert Counter(row["method"] for row in rows) == {method: COUNT for method in CPU_METHODS}
    files = sorted(p.relative_to(finished).as_posix() for p in (finished / "lines").rglob("*") if p.is_file())
    assert files == sorted(row["path"] for row in rows)
    for row in rows:
        assert row["path"] == f"lines/{row['method']}/{row['key'][:2]}/{row['key']}.png"
        assert (row["width"], row["height"]) == (256, 256)
    leftovers = {p.relative_to(finished).as_posix() for p in finished.rglob("*") if p.is_file() and not p.name.endswith((".png",))}
    # No temporaries, no ledger parts: the ledgers, the lock file and the run's summary.
    assert leftovers == {"prepared.parquet", "lines.parquet", ".pipe/locks/lines.lock", ".pipe/summaries/lines.json", ".pipe/options/lines.json", ".pipe/options/lines.generation", ".pipe/options/lines.upstream.json", ".pipe/memos/lines.json"}


def test_recorded_parameters_reproduce_every_file_exactly(finished):
    for row in _ledger(finished):
        written = cv2.imread(str(finished / row["path"]), cv2.IMREAD_UNCHANGED)
        assert written.dtype == np.uint8 and written.ndim == 2
        assert np.array_equal(_reproduce(finished, row), written), row["line"]
        ink = float((written < 128).mean())
        assert abs(row["ink_fraction"] - ink) < 1e-6


def test_drawn_parameters_follow_their_uniform_distributions(finished):
    rows = _ledger(finished)
    sigmas = Counter(json.loads(r["params"])["sigma"] for r in rows if r["method"] == "xdog")
    kernels = Counter(json.loads(r["params"])["kernel_size"] for r in rows if r["method"] == "dilate")
    assert set(sigmas) == {0.3, 0.4, 0.5} and set(kernels) == {4, 5}
    # Chi-square goodness of fit against uniform choice; p > 0.001 unless the draws are biased.
    assert stats.chisquare(list(sigmas.values())).pvalue > 0.001
    assert stats.chisquare(list(kernels.values())).pvalue > 0.001
    # Draws are per sample, not per batch: neighbouring keys do not share a value in long runs.
    ordered = [json.loads(r["params"])["sigma"] for r in sorted(rows, key=lambda r: r["key"]) if r["method"] == "xdog"]
    assert max(len(run) for run in "".join(str(int(s * 10)) for s in ordered).split("3")) < 40
    fixed = json.loads(next(r["params"] for r in rows if r["method"] == "xdog"))
    assert (fixed["k"], fixed["p"], fixed["eps"], fixed["phi"]) == (4.5, 19.0, 0.01, 1e9)


def test_finished_run_is_a_no_op_and_same_seed_gives_same_draws(finished, tmp_path, capsys):
    assert main(["extract", str(finished), "--method", ",".join(CPU_METHODS), "--workers", "0"]) == 0
    assert "nothing to do" in capsys.readouterr().err
    # A second dataset with the same images and seed draws the same parameters; another seed does not.
    other = tmp_path / "other"
    make_prepared_dataset(other, 20, size=256)
    assert main(["extract", str(other), "--method", "xdog", "--workers", "0"]) == 0
    first = {r["key"]: r["params"] for r in _ledger(other)}
    reference = {r["key"]: r["params"] for r in _ledger(finished) if r["method"] == "xdog"}
    assert all(first[key] == reference[key] for key in first)
    assert main(["extract", str(other), "--method", "xdog", "--workers", "0", "--seed", "7", "--redo"]) == 0
    changed = {r["key"]: r["params"] for r in _ledger(other)}
    assert sum(changed[key] != first[key] for key in first) >= 5


def test_bad_inputs_are_recorded_and_the_run_goes_on(tmp_path):
    root = tmp_path / "root"
    keys = make_prepared_dataset(root, 6, size=128)
    (root / "prepared" / keys[0][:2] / f"{keys[0]}.png").unlink()
    (root / "prepared" / keys[1][:2] / f"{keys[1]}.png").write_bytes(b"<html>not a png</html>")
    truncated = root / "prepared" / keys[2][:2] / f"{keys[2]}.png"
    truncated.write_bytes(truncated.read_bytes()[:200])
    assert main(["extract", str(root), "--method", "xdog,gray", "--workers", "0"]) == 0
    rows = {(r["method"], r["key"]): r for r in _ledger(root)}
    assert len(rows) == 12
    for method in ("xdog", "gray"):
        assert (rows[(method, keys[0])]["status"], rows[(method, keys[0])]["reason"]) == ("failed", "missing_input")
        assert (rows[(method, keys[1])]["status"], rows[(method, keys[1])]["reason"]) == ("failed", "decode_error")
        assert (rows[(method, keys[2])]["status"], rows[(method, keys[2])]["reason"]) == ("failed", "decode_error")
        assert all(rows[(method, key)]["status"] == "ok" for key in keys[3:])


def test_options_post_processing_and_overrides_are_applied_and_recorded(tmp_path):
    root = tmp_path / "root"
    make_prepared_dataset(root, 6, size=256)
    args = ["extract", str(root), "--method", "dilate", "--set", "dilate.kernel_size=3", "--size", "128", "--equalize", "--binarize", "otsu", "--workers", "0"]
    assert main(args) == 0
    for row in _ledger(root):
        params = json.loads(row["params"])
        # On a CPU the OpenCV form made it, and the row says so.
        assert params == {"kernel_size": 3, "size": 128, "equalize": True, "binarize": "otsu", "impl": "opencv"}
        written = cv2.imread(str(root / row["path"]), cv2.IMREAD_UNCHANGED)
        assert written.shape == (128, 128) and set(np.unique(written)) <= {0, 255}
        assert np.array_equal(_reproduce(root, row), written)


def test_ldm_runs_from_a_checkpoint_and_reproduces(tmp_path):
    root = tmp_path / "root"
    make_prepared_dataset(root, 4, size=256)
    torch.manual_seed(0)
    model = LineDetectionModel(LdmConfig(base_channels=8))
    checkpoint = tmp_path / "ldm.pt"
    save_ldm(model, checkpoint)
    assert main(["extract", str(root), "--method", "ldm", "--weights", f"ldm={checkpoint}", "--workers", "0"]) == 0
    rows = _ledger(root)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    network = {"ldm": model.eval()}
    for row in rows:
        written = cv2.imread(str(root / row["path"]), cv2.IMREAD_UNCHANGED)
        assert written.shape == (128, 128)
        assert np.array_equal(_reproduce(root, row, network), written)


def test_decoding_gives_the_pixels_imread_gives_in_rgb_order(tmp_path, monkeypatch):
    root = tmp_path / "root"
    make_prepared_dataset(root, 3, size=64)
    images = prepared_images(root)
    # Not only the RGB PNGs prepare writes: a grey one and one with alpha decode as imread decodes them.
    grey, alpha = (root / path for _, path in images[1:])
    cv2.imwrite(str(grey), cv2.imread(str(grey), cv2.IMREAD_GRAYSCALE))
    cv2.imwrite(str(alpha), cv2.cvtColor(cv2.imread(str(alpha)), cv2.COLOR_BGR2BGRA))

    def decoded() -> list[np.ndarray]:
        return [decode_prepared(root, ExtractItem(key, path, ("gray",)))["image"] for key, path in images]

    expected = [_read_rgb(root, path) for _, path in images]
    assert all(np.array_equal(ours, theirs) for ours, theirs in zip(decoded(), expected, strict=True))
    monkeypatch.setattr("manifests.images.pyspng", None)  # a platform without libspng's wheel: OpenCV alone
    assert all(np.array_equal(ours, theirs) for ours, theirs in zip(decoded(), expected, strict=True))
    monkeypatch.delattr(cv2, "IMREAD_COLOR_RGB", raising=False)  # OpenCV before 4.11: BGR, then swapped
    assert all(np.array_equal(ours, theirs) for ours, theirs in zip(decoded(), expected, strict=True))


def _in_a_fresh_process(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_cpu_worker_reuses_freed_image_buffers_instead_of_faulting_in_new_pages():
    # Without start_cpu_worker() the loop faults in about 700 fresh pages (glibc 2.36, a fresh process).
    churn = """
import resource, numpy as np
from pipeline.extract.opencv_units import start_cpu_worker
start_cpu_worker()
np.ones((512, 512, 3), np.float32).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    np.ones((512, 512, 3), np.float32).sum()  # a 3 MB buffer, freed each time, as highpass's are
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    assert int(_in_a_fresh_process(churn)) < 100


def test_a_cpu_worker_ends_without_the_interpreters_teardown():
    """The workers' exit handler skips the handlers registered before it (module teardown with them)."""
    code = "import atexit; atexit.register(print, 'teardown'); from pipeline.extract.opencv_units import start_cpu_worker; start_cpu_worker()"
    assert _in_a_fresh_process(code) == ""


def test_cpu_workers_start_with_one_blas_thread_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    with cpu_worker_environment():
        assert _in_a_fresh_process("import os; print(os.environ['OPENBLAS_NUM_THREADS'])") == "1\n"
    assert "OPENBLAS_NUM_THREADS" not in os.environ
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    with cpu_worker_environment():
        assert os.environ["OPENBLAS_NUM_THREADS"] == "3"
    assert os.environ["OPENBLAS_NUM_THREADS"] == "3"


def test_the_pipe_process_itself_is_never_set_up_as_a_worker(tmp_path, monkeypatch):
    def refuse() -> None:
        raise AssertionError("start_cpu_worker ran in the pipe process")

    monkeypatch.setattr("pipeline.extract.stage.start_cpu_worker", refuse)
    root = tmp_path / "root"
    make_prepared_dataset(root, 2, size=64)
    assert main(["extract", str(root), "--method", "gray", "--workers", "0"]) == 0
    assert len(_ledger(root)) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "sketchkeras"], "sketchkeras.pt"),
        (["--method", "sketchkeras"], "github.com/lllyasviel/sketchKeras/releases"),
        (["--method", "ldm"], "pipe train ldm"),
        (["--method", "pencil"], "unknown method 'pencil'"),
        (["--set", "xdog.sigmaa=1"], "no option 'sigmaa'"),
        (["--set", "xdog.sigma=big"], "takes float values"),
        (["--set", "sketchkeras.mode=bold"], "must be one of raw, enhanced, pured"),
        (["--device", "cuda"], "no CUDA device"),
    ],
)
def test_user_errors_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("PIPE_WEIGHTS", str(tmp_path / "weights"))
    root = tmp_path / "root"
    make_prepared_dataset(root, 1, size=64)
    assert main(["extract", str(root), "--workers", "0", *args]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err
    assert "Traceback" not in err


def test_extract_before_prepare_says_what_to_run(tmp_path, capsys):
    assert main(["extract", str(tmp_path), "--workers", "0"]) == 2
    assert "pipe prepare" in " ".join(capsys.readouterr().err.split())


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.5, 2.0])
def test_ctrl_c_while_workers_start_is_one_line_without_tracebacks(tmp_path, delay):
    """A terminal's Ctrl-C (SIGINT to the whole process group) while the decode and encode workers are
    still importing: the run ends with the one "interrupted" line, no worker prints its own traceback."""
    root = tmp_path / "root"
    make_prepared_dataset(root, 1200, size=256)  # enough work that the run is still going after `delay` (about 5 s)
    command = _command(root, "--workers", "2", "--batch-size", "4")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    started = root / ".pipe" / "tmp" / "lines"
    deadline = time.monotonic() + 120
    while not started.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err
    assert "error: interrupted:" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "Exception ignored" not in err, err
