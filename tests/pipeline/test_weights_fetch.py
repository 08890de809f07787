"""`pipe weights fetch`: verified downloads against a local HTTP server (loopback only, no network).

The server is an http.server in a thread on 127.0.0.1 and a free port. It serves byte ranges and can
be told, per path, to cut a transfer off halfway, to stall, to ignore Range, or to answer 404/500;
it records every request's path and Range header.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from extractors.weights import SOURCES
from pipeline import weights_fetch
from pipeline.cli import main


class _State:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, object] = {}  # path -> "cut" | "stall" | "ignore-range" | 404 | 500
        self.requests: list[tuple[str, str | None]] = []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _State

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        state = self.state
        state.requests.append((self.path, self.headers.get("Range")))
        mode = state.modes.get(self.path)
        data = state.files.get(self.path)
        if mode in (404, 500) or data is None:
            self.send_error(mode if mode in (404, 500) else 404)
            return
        start, status = 0, 200
        ranged = self.headers.get("Range")
        if ranged and mode != "ignore-range":
            start = int(re.fullmatch(r"bytes=(\d+)-", ranged).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode in ("cut", "stall"):
            state.modes.pop(self.path)  # once: the next request is served whole
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if mode == "stall":
                time.sleep(1.5)
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass


@pytest.fixture
def server():
    state = _State()
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def weights(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "weights"
    monkeypatch.setenv("PIPE_WEIGHTS", str(folder))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    return folder


def payload(seed: int, size: int = 300_000) -> bytes:
    return hashlib.shake_256(seed.to_bytes(4, "little")).digest(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pin(monkeypatch, name: str, **changes) -> None:
    monkeypatch.setitem(SOURCES, name, dataclasses.replace(SOURCES[name], **changes))


def serve(server: _State, path: str, data: bytes) -> str:
    server.files[path] = data
    return server.base + path


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def contents(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# --------------------------------------------------------------------------- pins


def test_pinned_digests_are_full_and_agree_with_the_file_names():
    for name in ("inception", "vgg16", "googlenet"):
        source = SOURCES[name]
        assert re.fullmatch(r"[0-9a-f]{64}", source.sha256), name
        name_hash = source.file_name.rsplit("-", 1)[1].split(".")[0]
        assert source.sha256.startswith(name_hash) and source.url.endswith("/" + source.file_name), name
    sketchkeras = SOURCES["sketchkeras"]
    assert sketchkeras.url.endswith("/mod.h5") and sketchkeras.sha256 is None and "no SHA-256" in sketchkeras.sha256_note
    assert not SOURCES["ldm"].downloadable


# --------------------------------------------------------------------------- good and bad downloads


def test_a_good_fetch_lands_the_file_and_leaves_no_partial(server, weights, monkeypatch, capsys):
    data = payload(1)
    pin(monkeypatch, "vgg16", sha256=sha(data))
    url = serve(server, "/mirror/vgg16.pth", data)
    assert main(["weights", "fetch", "vgg16", "--url", url]) == 0
    assert (weights / SOURCES["vgg16"].file_name).read_bytes() == data
    assert contents(weights) == [SOURCES["vgg16"].file_name]
    assert "fetched" in capsys.readouterr().err


def test_the_official_url_is_used_without_url(server, weights, monkeypatch):
    data = payload(2)
    pin(monkeypatch, "googlenet", url=serve(server, "/official/googlenet.pth", data), sha256=sha(data))
    assert main(["weights", "fetch", "googlenet"]) == 0
    assert (weights / SOURCES["googlenet"].file_name).read_bytes() == data
    assert server.requests == [("/official/googlenet.pth", None)]


def test_a_wrong_hash_keeps_nothing(server, weights, capsys):
    url = serve(server, "/mirror/inception.pth", payload(3))  # not the published file: the real pin fails
    assert main(["weights", "fetch", "inception", "--url", url]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "SHA-256 mismatch" in err and SOURCES["inception"].sha256 in err and sha(payload(3)) in err
    assert contents(weights) == []  # no final file, no partial, no .partial folder


def test_a_prefix_pin_is_checked_as_torch_hub_does(server, weights, monkeypatch):
    data = payload(4)
    url = serve(server, "/f.pth", data)
    pin(monkeypatch, "vgg16", sha256="0" * 8 if sha(data)[:8] != "0" * 8 else "1" * 8)
    assert main(["weights", "fetch", "vgg16", "--url", url]) == 1
    assert contents(weights) == []
    pin(monkeypatch, "vgg16", sha256=sha(data)[:8])
    assert main(["weights", "fetch", "vgg16", "--url", url]) == 0
    assert (weights / SOURCES["vgg16"].file_name).read_bytes() == data


# --------------------------------------------------------------------------- cut transfers and resume


def test_a_cut_transfer_resumes_with_a_range_request(server, weights, monkeypatch, capsys):
    data = payload(5)
    half = len(data) // 2
    pin(monkeypatch, "vgg16", sha256=sha(data))
    url = serve(server, "/v.pth", data)
    server.modes["/v.pth"] = "cut"
    assert main(["weights", "fetch", "vgg16", "--url", url]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "cut off" in err and "resumes" in err and url in err
    final = weights / SOURCES["vgg16"].file_name
    partial = weights / ".partial" / f"{final.name}.part"
    assert not final.exists() and partial.read_bytes() == data[:half]

    assert main(["weights", "fetch", "vgg16", "--url", url]) == 0
    assert server.requests[-1] == ("/v.pth", f"bytes={half}-")
    assert final.read_bytes() == data and contents(weights) == [final.name]


def test_a_stalled_transfer_times_out_and_resumes(server, weights, monkeypatch, capsys):
    data = payload(6)
    pin(monkeypatch, "googlenet", sha256=sha(data))
    monkeypatch.setattr(weights_fetch, "TIMEOUT_S", 0.3)
    url = serve(server, "/g.pth", data)
    server.modes["/g.pth"] = "stall"
    assert main(["weights", "fetch", "googlenet", "--url", url]) == 1
    assert "timed out" in capsys.readouterr().err
    assert not (weights / SOURCES["googlenet"].file_name).exists()
    assert main(["weights", "fetch", "googlenet", "--url", url]) == 0
    assert server.requests[-1][1] == f"bytes={len(data) // 2}-"
    assert (weights / SOURCES["googlenet"].file_name).read_bytes() == data


def test_a_server_that_ignores_range_starts_over(server, weights, monkeypatch):
    data = payload(7)
    pin(monkeypatch, "vgg16", sha256=sha(data))
    url = serve(server, "/v.pth", data)
    server.modes["/v.pth"] = "cut"
    assert main(["weights", "fetch", "vgg16", "--url", url]) == 1
    server.modes["/v.pth"] = "ignore-range"
    assert main(["weights", "fetch", "vgg16", "--url", url]) == 0
    assert server.requests[-1][1] is not None  # it asked for the rest, got 200 and the whole file
    assert (weights / SOURCES["vgg16"].file_name).read_bytes() == data and contents(weights) == [SOURCES["vgg16"].file_name]


def test_416_starts_over_unless_the_partial_is_already_whole(server, weights, monkeypatch):
    data = payload(8)
    pin(monkeypatch, "vgg16", sha256=sha(data))
    url = serve(server, "/v.pth", data)
    partial = weights / ".partial" / f"{SOURCES['vgg16'].file_name}.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"x" * (len(data) + 10))  # longer than the file: 416, then a fresh download
    assert main(["weights", "fetch", "vgg16", "--url", url]) == 0
    assert [r[1] for r in server.requests] == [f"bytes={len(data) + 10}-", None]
    assert (weights / SOURCES["vgg16"].file_name).read_bytes() == data

    (weights / SOURCES["vgg16"].file_name).unlink()
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data)  # killed after the last byte, before the move
    server.requests.clear()
    assert main(["weights", "fetch", "vgg16", "--url", url]) == 0
    assert server.requests == [("/v.pth", f"bytes={len(data)}-")]
    assert (weights / SOURCES["vgg16"].file_name).read_bytes() == data and contents(weights) == [SOURCES["vgg16"].file_name]


# --------------------------------------------------------------------------- files already there


def test_a_verified_file_is_not_downloaded_again(server, weights, monkeypatch, capsys):
    data = payload(9)
    pin(monkeypatch, "vgg16", sha256=sha(data))
    url = serve(server, "/v.pth", data)
    assert main(["weights", "fetch", "vgg16", "--url", url]) == 0
    capsys.readouterr()
    asked = len(server.requests)
    assert main(["weights", "fetch", "vgg16", "--url", url]) == 0
    assert len(server.requests) == asked
    assert "already present" in capsys.readouterr().err


def test_a_present_file_with_the_wrong_hash_needs_force(server, weights, monkeypatch, capsys):
    data = payload(10)
    pin(monkeypatch, "vgg16", sha256=sha(data))
    url = serve(server, "/v.pth", data)
    final = weights / SOURCES["vgg16"].file_name
    weights.mkdir()
    final.write_bytes(b"something else")
    assert main(["weights", "fetch", "vgg16", "--url", url]) == 1
    out = lines(capsys.readouterr().err)
    assert len(out) == 1 and "--force" in out[0] and server.requests == []
    assert final.read_bytes() == b"something else"
    assert main(["weights", "fetch", "vgg16", "--url", url, "--force"]) == 0
    assert final.read_bytes() == data


# --------------------------------------------------------------------------- errors are one line


@pytest.mark.parametrize("status", [404, 500])
def test_http_errors_are_one_line_naming_the_url(server, weights, status, capsys):
    url = serve(server, "/missing.pth", b"")
    server.modes["/missing.pth"] = status
    assert main(["weights", "fetch", "inception", "--url", url]) == 1
    out = lines(capsys.readouterr().err)
    assert len(out) == 1 and url in out[0] and f"HTTP {status}" in out[0] and "Traceback" not in out[0]
    assert contents(weights) == []


def test_an_unreachable_host_is_one_line(weights, capsys):
    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/inception.pth"
    assert main(["weights", "fetch", "inception", "--url", url]) == 1
    out = lines(capsys.readouterr().err)
    assert len(out) == 1 and url in out[0] and "refused" in out[0].lower()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ldm"], "pipe train ldm"),
        (["nonsense"], "unknown weights 'nonsense'"),
        (["all", "--url", "http://127.0.0.1:9/x"], "single NAME"),
        (["vgg16", "--url", "ftp://example.invalid/x"], "--url must be"),
    ],
)
def test_names_that_cannot_be_fetched_are_one_line_exit_2(weights, argv, message, capsys):
    assert main(["weights", "fetch", *argv]) == 2
    out = lines(capsys.readouterr().err)
    assert len(out) == 1 and message in out[0]
    assert contents(weights) == []


def test_help_names_every_file_its_command_and_the_mirror_option(capsys):
    assert main(["weights", "fetch", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in ("inception", "vgg16", "googlenet", "sketchkeras", "all", "pipe eval", "pipe extract", "PIPE_WEIGHTS", "--url", "mirror"):
        assert name in text, name


# --------------------------------------------------------------------------- sketchKeras and all


def _tiny_keras_file(path: Path) -> bytes:
    from extractors.sketchkeras.keras_file import write_keras_h5
    from tests.stand_ins.sketchkeras import random_keras_model, sketchkeras_model_config

    write_keras_h5(path, random_keras_model(sketchkeras_model_config(width=0.125), seed=1))
    return path.read_bytes()


def test_sketchkeras_is_downloaded_then_converted(server, weights, monkeypatch, tmp_path, capsys):
    from extractors.sketchkeras.weights import load_converted

    data = _tiny_keras_file(tmp_path / "mod.h5")
    pin(monkeypatch, "sketchkeras", url=serve(server, "/download/0.1/mod.h5", data))
    assert main(["weights", "fetch", "sketchkeras"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "converted mod.h5" in err and sha(data) in err and "no published SHA-256" in err
    assert contents(weights) == ["sketchkeras.pt"]  # the downloaded mod.h5 is not kept
    load_converted(weights / "sketchkeras.pt")
    asked = len(server.requests)
    assert main(["weights", "fetch", "sketchkeras"]) == 0
    assert len(server.requests) == asked and "already present" in capsys.readouterr().err


def test_a_sketchkeras_download_that_is_not_the_model_keeps_nothing(server, weights, monkeypatch, capsys):
    pin(monkeypatch, "sketchkeras", url=serve(server, "/mod.h5", b"<html>rate limited</html>"))
    assert main(["weights", "fetch", "sketchkeras"]) == 1
    out = lines(capsys.readouterr().err)
    assert len(out) == 1 and "not mod.h5" in out[0]
    assert contents(weights) == []


def test_all_goes_on_after_a_failure_and_skips_what_is_present(server, weights, monkeypatch, tmp_path, capsys):
    pin(monkeypatch, "sketchkeras", url=serve(server, "/mod.h5", _tiny_keras_file(tmp_path / "mod.h5")))
    for seed, name in enumerate(("vgg16", "googlenet", "inception")):
        data = payload(20 + seed)
        pin(monkeypatch, name, url=serve(server, f"/{name}", data), sha256=sha(data))
    server.modes["/googlenet"] = 500
    assert main(["weights", "fetch", "all"]) == 1
    err = capsys.readouterr().err
    assert "3 fetched, 0 already present, 1 failed" in err
    assert sorted(contents(weights)) == sorted(["sketchkeras.pt", SOURCES["vgg16"].file_name, SOURCES["inception"].file_name])
    server.modes.clear()
    server.requests.clear()
    assert main(["weights", "fetch", "all"]) == 0
    assert server.requests == [("/googlenet", None)]
    assert "1 fetched, 3 already present, 0 failed" in capsys.readouterr().err


def test_one_fetch_at_a_time_per_weights_folder(weights, capsys):
    import fcntl
    import os

    weights.mkdir()
    fd = os.open(weights, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["weights", "fetch", "vgg16", "--url", "http://127.0.0.1:9/v.pth"]) == 2
    finally:
        os.close(fd)
    out = lines(capsys.readouterr().err)
    assert len(out) == 1 and "another `pipe weights fetch`" in out[0]
