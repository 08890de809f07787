"""`pipe serve` bounds the work of one request and of a burst: images over the pixel limit are refused
from their header (413), large sketches are decoded reduced and coloured at --max-side, a full queue
answers 503 with Retry-After, memory goes back to its idle level after a burst; malformed bodies get
a 400 without parser noise in the log, and no answer names an absolute path of the server."""

from __future__ import annotations

import io
import json
import logging
import re
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.cli import main
from pipeline.serve import create_app, uploads
from pipeline.serve.app import Limits
from pipeline.serve.models import shown_path
from pipeline.serve.server import BackgroundServer
from pipeline.serve.uploads import decode_sketch, shrink_hint
from tests.pipeline.test_serve import checkpoints, decoded, get_json, hint_layer, models, png, post, sketch  # noqa: F401 (fixtures)
from train.inputs import resize_hint

def with_size_in_header(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (its pixels stay small): a decompression bomb's header."""
    assert data[12:16] == b"IHDR"
    chunk = b"IHDR" + struct.pack(">II", width, height) + data[24:29]
    return data[:8] + data[8:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:]


def served(models, **limits):
    return BackgroundServer(create_app(models, batch_window_s=0.005, limits=Limits(**limits)))


def test_image_over_the_pixel_limit_is_413_with_the_limit(models):
    """A real 12000 x 12000 PNG (27 #22) is too large, not "damaged"; a header claiming 30000 x 30000
    (over Pillow's own bomb limit) is refused as fast, before any pixel is decoded."""
    huge = png(np.full((12000, 12000), 255, np.uint8))
    bomb = with_size_in_header(png(sketch(97, 61)), 30000, 30000)
    with served(models) as url:
        status, headers, body = post(url, {"sketch": huge})
        assert status == 413 and headers["content-type"] == "application/json"
        assert json.loads(body)["error"] == "sketch is 12000x12000 (144 MP), over this server's limit of 40 MP (pipe serve --max-pixels): send a smaller image"
        started = time.perf_counter()
        status, _, body = post(url, {"sketch": bomb})
        assert status == 413 and time.perf_counter() - started < 2
        assert "over this server's limit of 40 MP" in json.loads(body)["error"]
        status, _, body = post(url, {"sketch": png(sketch(97, 61)), "hints": with_size_in_header(png(hint_layer((61, 97), (0, 0, 5, 5), (0, 0, 255))), 9000, 9000)})
        assert status == 413 and json.loads(body)["error"].startswith("hints is 9000x9000 (81 MP), over this server's limit")


def test_large_sketch_is_coloured_at_max_side(models):
    """8000 x 6000 (a 100 KB PNG) is decoded, shrunk to --max-side and answered at that size in
    about a second, where it used to take ~18 s and GBs at full size."""
    with served(models, max_pixels=70_000_000, max_side=1024) as url:
        assert get_json(f"{url}/api/models")["max_side"] == 1024
        started = time.perf_counter()
        status, headers, body = post(url, {"sketch": png(sketch(8000, 6000)), "stage": "final"})
        seconds = time.perf_counter() - started
    assert status == 200, body
    assert decoded(body).shape == (768, 1024, 3)
    assert headers["x-pipe-scaled-from"] == "8000x6000"
    assert seconds < 10, seconds


def test_hints_of_a_large_sketch_are_shrunk_with_it(models):
    """A hint layer of the sketch's full size is shrunk as hints: the blob still colours its place."""
    width, height = 4000, 3000
    line = png(sketch(width, height, seed=2))
    box = (1200, 800, 2000, 1600)
    layer = png(hint_layer((height, width), box, (255, 0, 0)))
    with served(models, max_side=400) as url:
        plain = decoded(post(url, {"sketch": line, "stage": "draft"})[2]).astype(int)
        status, headers, body = post(url, {"sketch": line, "hints": layer, "stage": "draft"})
    assert status == 200, body
    assert headers["x-pipe-scaled-from"] == "4000x3000"
    change = np.abs(decoded(body).astype(int) - plain).mean(axis=2)
    assert change.shape == (300, 400)
    inside, far = change[80:160, 120:200].mean(), change[:, 300:].mean()
    assert inside > 0.2 and inside > 3 * far, (inside, far)


def test_shrink_hint_strip_by_strip_matches_the_whole_layer(monkeypatch):
    """Shrinking in strips gives what resize_hint gives on the whole layer; a one-pixel hint stays full strength."""
    rng = np.random.default_rng(0)
    layer = np.zeros((640, 960, 4), np.uint8)
    for _ in range(40):
        y, x = rng.integers(0, 630), rng.integers(0, 950)
        layer[y : y + rng.integers(1, 10), x : x + rng.integers(1, 10)] = (*rng.integers(0, 256, 3), 255)
    layer[333, 777] = (10, 200, 30, 255)
    monkeypatch.setattr(uploads, "STRIP_PIXELS", 4096)  # many strips
    shrunk = shrink_hint(layer, 80, 120)
    whole = resize_hint(torch.from_numpy(layer).permute(2, 0, 1)[None].float().div(255), (80, 120))
    expected = whole[0].permute(1, 2, 0).mul(255).round().to(torch.uint8).numpy()
    assert np.abs(shrunk.astype(int) - expected).max() <= 1
    assert tuple(shrunk[333 // 8, 777 // 8]) == (10, 200, 30, 255)


def test_jpeg_is_decoded_reduced_and_upright():
    """A 4000 x 3000 JPEG turned by EXIF (orientation 6) is read upright at 512 px, as a full decode
    and an area resize would give it, and reports the upright size it was sent at."""
    grey = sketch(4000, 3000, seed=5)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    decoded_sketch = decode_sketch(buffer.getvalue(), side=512)
    assert (decoded_sketch.height, decoded_sketch.width) == (4000, 3000)
    assert decoded_sketch.grey.shape == (512, 384)
    upright = cv2.rotate(grey, cv2.ROTATE_90_CLOCKWISE)
    reference = cv2.resize(upright, (384, 512), interpolation=cv2.INTER_AREA)
    assert np.abs(decoded_sketch.grey.astype(int) - reference).mean() < 4


def test_transparent_sketch_is_white_paper_when_shrunk():
    """An RGBA sketch (black strokes on transparency) goes through Pillow: the paper stays white."""
    rgba = np.zeros((3000, 2000, 4), np.uint8)
    rgba[1000:1010, :, 3] = 255  # one black stroke, everything else transparent black
    result = decode_sketch(png(rgba), side=300)
    assert result.grey.shape == (300, 200)
    assert result.grey[:90].min() == 255 and result.grey[100:101].max() < 128


def test_full_queue_answers_503_with_retry_after(models):
    """With --queue 1, a second request while the first is held is refused at once: 503, Retry-After, JSON."""
    app = create_app(models, batch_window_s=2.0, max_batch=8, limits=Limits(queue=1))
    answers = {}
    with BackgroundServer(app) as url:
        first = threading.Thread(target=lambda: answers.__setitem__("first", post(url, {"sketch": png(sketch(97, 61))})))
        first.start()
        time.sleep(0.5)  # the first waits in the batch window
        started = time.perf_counter()
        status, headers, body = post(url, {"sketch": png(sketch(97, 61))})
        refused_in = time.perf_counter() - started
        first.join(timeout=60)
        after = post(url, {"sketch": png(sketch(97, 61))})
    assert status == 503 and refused_in < 1.0
    assert headers["content-type"] == "application/json" and int(headers["retry-after"]) >= 1
    assert json.loads(body)["error"] == "the server is busy: it holds 1 colouring requests, its limit (pipe serve --queue 1); try again in a moment"
    assert answers["first"][0] == 200 and after[0] == 200


def test_malformed_multipart_is_400_without_parser_warnings(models, caplog):
    """A body whose boundary is not the declared one (27 #30): 400 with a clear JSON error, one info line."""
    body = b'--abc\r\nContent-Disposition: form-data; name="sketch"; filename="a.png"\r\n\r\nxyz\r\n--abc--\r\n'
    with served(models) as url, caplog.at_level(logging.DEBUG):
        request = urllib.request.Request(f"{url}/api/colorize", data=body, headers={"Content-Type": "multipart/form-data; boundary=zzz"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        message = json.loads(caught.value.read())["error"]
    assert caught.value.code == 400
    assert message.startswith("the request is not valid multipart/form-data")
    assert not [r for r in caplog.records if r.name.startswith(("python_multipart", "multipart"))]
    assert [r.levelname for r in caplog.records if r.name == "pipeline.serve"] == ["INFO"]


def test_checkpoints_are_named_without_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inside = tmp_path / "root" / "runs" / "draft" / "checkpoints" / "last.pt"
    assert shown_path(Path("root/runs/draft/checkpoints/last.pt")) == "root/runs/draft/checkpoints/last.pt"
    assert shown_path(inside) == "root/runs/draft/checkpoints/last.pt"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert shown_path(inside) == "runs/draft/checkpoints/last.pt"
    assert shown_path(Path("../root/runs/draft/checkpoints/last.pt")) == "runs/draft/checkpoints/last.pt"
    assert shown_path(tmp_path / "weights" / "model.pt") == "model.pt"
    monkeypatch.chdir("/")  # a service started in / names no path from the root either
    assert shown_path(inside) == "runs/draft/checkpoints/last.pt"


def test_max_side_under_the_model_size_is_refused(checkpoints, capsys):
    assert main(["serve", "--draft", str(checkpoints["draft"]), "--device", "cpu", "--max-side", "32"]) == 2
    assert "--max-side 32 is under the model's 64 px" in capsys.readouterr().err


def rss_mb(pid: int) -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024


@pytest.mark.slow  # ~20 s: two bursts of six 8000 x 8000 uploads on the CPU
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the resident size from /proc")
def test_memory_returns_to_idle_after_bursts(checkpoints):
    """`pipe serve`, idle; two bursts of 6 concurrent 8000 x 8000 uploads; idle again within 150 MB."""
    command = [sys.executable, "-m", "pipeline.cli", "serve", "--draft", str(checkpoints["draft"]), "--port", "0", "--device", "cpu", "--max-pixels", "70000000"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        found = next(filter(None, (re.search(r"listening on (http://127\.0\.0\.1:\d+)", line) for line in process.stderr)), None)
        assert found, "the server did not start"
        url, big = found.group(1), png(sketch(8000, 8000))
        assert post(url, {"sketch": png(sketch(97, 61))})[0] == 200
        idle = rss_mb(process.pid)
        after = []
        for _ in range(2):
            statuses: list[int] = []
            threads = [threading.Thread(target=lambda: statuses.append(post(url, {"sketch": big})[0])) for _ in range(6)]
            [thread.start() for thread in threads]
            [thread.join(timeout=120) for thread in threads]
            assert statuses == [200] * 6
            time.sleep(0.3)
            after.append(rss_mb(process.pid))
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert max(after) - idle < 150, (idle, after)


def test_wrong_method_and_unknown_path_say_what_to_use(models):
    """A GET to /api/colorize (a browser's address bar) or a mistyped path is told the API, as JSON."""
    with served(models) as url:
        with pytest.raises(urllib.error.HTTPError) as wrong_method:
            urllib.request.urlopen(f"{url}/api/colorize", timeout=30)
        with pytest.raises(urllib.error.HTTPError) as unknown:
            urllib.request.urlopen(f"{url}/api/colourize", timeout=30)
    assert wrong_method.value.code == 405 and wrong_method.value.headers["allow"] == "POST"
    assert json.loads(wrong_method.value.read())["error"] == "GET /api/colorize is not served: use POST (multipart/form-data with the file field `sketch`)"
    assert unknown.value.code == 404 and unknown.value.headers["content-type"] == "application/json"
    assert json.loads(unknown.value.read())["error"] == "no such page: /api/colourize (the API is GET /api/models, GET /api/stats and POST /api/colorize)"


def test_truncated_png_is_400_without_codec_noise_on_stderr(capfd):
    """An upload cut short (a dropped connection, a partial copy) is named truncated, and libpng's own
    complaint does not reach the server's stderr."""
    data = png(sketch(3000, 2000))
    with pytest.raises(uploads.BadInput) as caught:
        decode_sketch(data[: len(data) * 9 // 10], side=512)
    assert caught.value.status == 400
    assert caught.value.message == "sketch is a damaged or unsupported image: image file is truncated"
    assert "libpng" not in capfd.readouterr().err
    assert decode_sketch(data + b"trailing bytes", side=512).grey.shape == (341, 512)  # bytes after IEND are harmless
