"""`pipe serve`: tiny CPU checkpoints served by a real uvicorn server on 127.0.0.1, the HTTP API's
answers (sizes, hints, errors, batching), the command itself, and the page in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipeline.cli import main
from pipeline.serve import ServedModels, create_app
from pipeline.serve.server import BackgroundServer
from tests.helpers import make_sharded_dataset
from train.inference import LoadedGenerator
from train.recipes import stage_recipe

SIZE = 64
LIMIT = 2**20  # the upload limit of the served app under test: 1 MiB


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """3-step cheng2018 draft (reads hints) and refinement checkpoints at 64 px."""
    root = tmp_path_factory.mktemp("serve") / "root"
    make_sharded_dataset(root, 8, SIZE, "--hints", "patches", "--val", "0", "--shard-samples", "4")
    found = {}
    for stage in ("draft", "refine"):
        args = ["train", stage, str(root), "--recipe", "cheng2018", "--steps", "3", "--batch-size", "2", "--size", str(SIZE), "--workers", "0", "--width", "0.25", "--name", stage]
        assert main(args) == 0
        found[stage] = root / "runs" / stage / "checkpoints" / "last.pt"
    return found


@pytest.fixture(scope="module")
def models(checkpoints) -> ServedModels:
    return ServedModels.load(checkpoints["draft"], checkpoints["refine"], torch.device("cpu"))


@pytest.fixture(scope="module")
def server(models):
    with BackgroundServer(create_app(models, max_upload_bytes=LIMIT, batch_window_s=0.005)) as url:
        yield url


def sketch(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Grey line art: black strokes on white."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width), 255, np.uint8)
    for _ in range(6):
        a, b = (tuple(int(v) for v in rng.integers(0, (width, height))) for _ in range(2))
        cv2.line(image, a, b, 0, 2)
    cv2.rectangle(image, (width // 4, height // 4), (3 * width // 4, 3 * height // 4), 0, 1)
    return image


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def hint_layer(shape: tuple[int, int], box: tuple[int, int, int, int], bgr: tuple[int, int, int]) -> np.ndarray:
    """BGRA layer (cv2's order) opaque in `box` (x0, y0, x1, y1)."""
    layer = np.zeros((*shape, 4), np.uint8)
    x0, y0, x1, y1 = box
    layer[y0:y1, x0:x1] = (*bgr, 255)
    return layer


def multipart(fields: dict[str, bytes | str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in fields.items():
        if isinstance(value, str):
            body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        else:
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\nContent-Type: image/png\r\n\r\n'
            body += head.encode() + value + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(url: str, fields: dict[str, bytes | str]) -> tuple[int, dict[str, str], bytes]:
    body, content_type = multipart(fields)
    request = urllib.request.Request(f"{url}/api/colorize", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def decoded(body: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize("width,height", [(97, 61), (61, 97), (201, 33), (7, 5)])
@pytest.mark.parametrize("stage", ["draft", "final"])
def test_output_is_the_sketch_size(server, width, height, stage):
    status, headers, body = post(server, {"sketch": png(sketch(width, height)), "stage": stage})
    assert status == 200, body
    assert headers["content-type"] == "image/png"
    assert headers["x-pipe-stage"] == stage
    assert decoded(body).shape == (height, width, 3)


def test_hints_change_the_output_where_given(server):
    line = png(sketch(97, 61))
    box = (30, 20, 50, 40)
    layer = png(hint_layer((61, 97), box, (255, 0, 0)))  # blue, in cv2's BGRA order
    for stage in ("draft", "final"):
        plain = decoded(post(server, {"sketch": line, "stage": stage})[2]).astype(int)
        status, _, body = post(server, {"sketch": line, "hints": layer, "stage": stage})
        assert status == 200, body
        change = np.abs(decoded(body).astype(int) - plain).mean(axis=2)
        x0, y0, x1, y1 = box
        inside = change[y0:y1, x0:x1].mean()
        far = change[:, 80:].mean()  # 30 px right of the blob
        assert inside > 0.2 and inside > 3 * far, (stage, inside, far)


BAD_INPUTS = {
    "not an image": ({"sketch": b"this is text, not a PNG"}, 400, "sketch is not an image"),
    "empty sketch": ({"sketch": b""}, 400, "sketch is empty"),
    "no sketch": ({"stage": "draft"}, 400, "no sketch"),
    "hints not an image": ({"sketch": png(sketch(97, 61)), "hints": b"nope"}, 400, "hints is not an image"),
    "hints of the wrong size": ({"sketch": png(sketch(97, 61)), "hints": png(hint_layer((60, 97), (0, 0, 5, 5), (0, 0, 255)))}, 422, "hints are 97x60, the sketch is 97x61"),
    "hints without alpha": ({"sketch": png(sketch(97, 61)), "hints": png(np.zeros((61, 97, 3), np.uint8))}, 422, "no alpha channel"),
    "reference not an image": ({"sketch": png(sketch(97, 61)), "reference": b"nope"}, 400, "reference is not an image"),
    "unknown stage": ({"sketch": png(sketch(97, 61)), "stage": "best"}, 400, "stage must be draft or final"),
    "unknown field": ({"sketch": png(sketch(97, 61)), "palette": b"x"}, 400, "unknown field(s) palette"),
    "over the upload limit": ({"sketch": b"\x89PNG" + bytes(LIMIT + 10)}, 413, "over this server's limit of 1 MiB"),
    "far over the upload limit": ({"sketch": bytes(5 * LIMIT)}, 413, "upload of 5.0 MiB"),
    "too thin": ({"sketch": png(np.zeros((1, 400), np.uint8))}, 422, "too thin"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_gets_its_status_and_message(server, case):
    fields, expected_status, expected_message = BAD_INPUTS[case]
    status, headers, body = post(server, fields)
    assert status == expected_status, body
    assert headers["content-type"] == "application/json"
    assert expected_message in json.loads(body)["error"]


def test_streamed_upload_over_the_limit_gets_413(server):
    body, content_type = multipart({"sketch": bytes(3 * LIMIT)})
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))  # no Content-Length: chunked
    request = urllib.request.Request(f"{server}/api/colorize", data=chunks, headers={"Content-Type": content_type})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 413
    assert "upload (still streaming) is over this server's limit of 1 MiB" in json.loads(caught.value.read())["error"]


def test_concurrent_requests_share_one_batch(models):
    """Two requests sent together are both answered from one forward pass (the batch fills at 2)."""
    app = create_app(models, batch_window_s=10.0, max_batch=2)
    answers: dict[int, tuple[int, dict[str, str], bytes]] = {}
    with BackgroundServer(app) as url:
        threads = [threading.Thread(target=lambda i=i: answers.__setitem__(i, post(url, {"sketch": png(sketch(97 + i, 61)), "stage": "final"}))) for i in range(2)]
        [thread.start() for thread in threads]
        [thread.join(timeout=60) for thread in threads]
        stats = get_json(f"{url}/api/stats")
    for i in range(2):
        status, headers, body = answers[i]
        assert status == 200, body
        assert headers["x-pipe-batch-size"] == "2"
        assert decoded(body).shape == (61, 97 + i, 3)
    assert stats["requests"] == 2 and stats["batches"] == 1 and stats["largest_batch"] == 2


def test_models_and_page_are_served(server, checkpoints):
    answer = get_json(f"{server}/api/models")
    assert [(m["role"], m["recipe"], m["stage"], m["size"], m["step"]) for m in answer["models"]] == [("draft", "cheng2018", "draft", SIZE, 3), ("refine", "cheng2018", "refine", SIZE, 3)]
    assert [m["checkpoint"] for m in answer["models"]] == ["runs/draft/checkpoints/last.pt", "runs/refine/checkpoints/last.pt"]  # never the server's absolute path
    assert answer["takes_hints"] and answer["palette_problem"] is None and answer["max_upload_mb"] == 1
    with urllib.request.urlopen(f"{server}/", timeout=30) as response:
        page = response.read().decode()
    assert '<script type="module" src="/static/app.js">' in page
    for asset in ("app.js", "hints.js", "app.css"):
        with urllib.request.urlopen(f"{server}/static/{asset}", timeout=30) as response:
            assert response.status == 200 and response.read()
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{server}/api/nothing", timeout=30)
    assert caught.value.code == 404 and "error" in json.loads(caught.value.read())


def test_palette_recipe_is_refused_with_422():
    recipe = stage_recipe("chen2019", "draft")
    generator = recipe.make_generator(recipe.in_channels, SIZE, 0.25).eval()
    loaded = LoadedGenerator(generator, recipe, SIZE, {"recipe": "chen2019", "stage": "draft"}, 0, "raw")
    app = create_app(ServedModels(loaded, None, torch.device("cpu"), {"draft": "chen.pt"}))
    with BackgroundServer(app) as url:
        assert get_json(f"{url}/api/models")["models"][0]["needs_palette"] is True
        status, _, body = post(url, {"sketch": png(sketch(97, 61)), "reference": png(np.zeros((8, 8, 3), np.uint8))})
    assert status == 422
    assert "chen2019 draft needs a reference palette, which pipe colorize does not support yet" in json.loads(body)["error"]


def test_pipe_serve_command_listens_and_answers(checkpoints, tmp_path):
    command = [sys.executable, "-m", "pipeline.cli", "serve", "--draft", str(checkpoints["draft"]), "--port", "0", "--device", "cpu"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        lines = []
        for line in process.stderr:
            lines.append(line)
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            if found:
                break
        assert found, "".join(lines)
        assert "serving draft cheng2018 draft step 3" in "".join(lines)
        answer = get_json(f"{found.group(1)}/api/models")
        assert [m["role"] for m in answer["models"]] == ["draft"]
        status, headers, body = post(found.group(1), {"sketch": png(sketch(97, 61)), "stage": "final"})
        assert status == 200 and headers["x-pipe-stage"] == "draft" and decoded(body).shape == (61, 97, 3)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_pipe_serve_refuses_misplaced_checkpoints(checkpoints, tmp_path, capsys):
    assert main(["serve", "--draft", str(tmp_path / "missing.pt")]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err
    assert main(["serve", "--draft", str(checkpoints["refine"]), "--device", "cpu"]) == 2
    assert "is a refine checkpoint" in capsys.readouterr().err


def chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"))), None)


@pytest.mark.slow
def test_page_colours_after_a_mouse_stroke(server, checkpoints, tmp_path):
    """Headless Chromium opens the page, uploads a sketch, paints a stroke; the result changes near it,
    and `pipe colorize --hints` with the page's hint layer gives the page's result (a session replays)."""
    browser_path = chromium()
    if browser_path is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    width, height = 160, 120
    path = tmp_path / "sketch.png"
    cv2.imwrite(str(path), sketch(width, height, seed=3))
    read_hint_layer = "async () => Array.from(new Uint8Array(await (await new Promise((done) => document.getElementById('hints').toBlob(done, 'image/png'))).arrayBuffer()))"
    read_final = "async () => Array.from(new Uint8Array(await (await fetch(document.getElementById('final').src)).arrayBuffer()))"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{server}/")
            page.wait_for_function("document.getElementById('models').textContent.includes('cheng2018')")
            page.set_input_files("#file", str(path))
            page.wait_for_function("document.body.dataset.results === '1'", timeout=30000)
            before = decoded(bytes(page.evaluate(read_final))).astype(int)
            assert before.shape == (height, width, 3)
            page.evaluate("() => { const size = document.getElementById('size'); size.value = '12'; size.dispatchEvent(new Event('input')); }")
            box = page.locator("#hints").bounding_box()
            scale = box["width"] / width
            stroke = [(40 + 4 * i, 60) for i in range(21)]  # sketch pixels: x 40..120 at y 60
            page.mouse.move(box["x"] + stroke[0][0] * scale, box["y"] + stroke[0][1] * scale)
            page.mouse.down()
            for x, y in stroke[1:]:
                page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
            page.mouse.up()
            page.wait_for_function("document.body.dataset.results === '2'", timeout=30000)
            after = decoded(bytes(page.evaluate(read_final))).astype(int)
            layer = bytes(page.evaluate(read_hint_layer))
            page.check('input[name="tool"][value="pick"]')  # eyedropper on the refined result
            shown = page.locator("#final").bounding_box()
            page.mouse.click(shown["x"] + 100.5 * shown["width"] / width, shown["y"] + 30.5 * shown["height"] / height)
            picked = page.input_value("#colour")
            page.keyboard.press("Control+z")  # undo the stroke: back to the unhinted colouring
            page.wait_for_function("document.body.dataset.results === '3'", timeout=30000)
            undone = decoded(bytes(page.evaluate(read_final))).astype(int)
        finally:
            browser.close()
    change = np.abs(after - before).mean(axis=2)
    near, far = change[54:67, 40:121].mean(), change[:30].mean()
    assert near > 0.2 and near > 3 * far, (near, far)
    near_pick = {"#%02x%02x%02x" % tuple(after[y, x, ::-1]) for y in range(29, 33) for x in range(99, 103)}
    assert picked in near_pick, (picked, near_pick)
    assert np.array_equal(undone, before)
    hints = decoded(layer)
    assert hints.shape == (height, width, 4)  # RGBA of the sketch's size, opaque only where painted
    assert set(np.unique(hints[..., 3])) == {0, 255}
    assert hints[60, 40:121, 3].min() == 255 and hints[:40, :, 3].max() == 0
    assert tuple(hints[60, 80]) == (0x2F, 0x40, 0xE0, 255)  # the page's default colour #e0402f, in BGRA
    (tmp_path / "hints.png").write_bytes(layer)
    args = ["colorize", str(path), "--draft", str(checkpoints["draft"]), "--refine", str(checkpoints["refine"]), "--hints", str(tmp_path / "hints.png"), "-o", str(tmp_path / "out"), "--device", "cpu"]
    assert main(args) == 0
    replayed = cv2.imread(str(tmp_path / "out" / "sketch.png")).astype(int)
    assert np.abs(replayed - after).max() <= 2
