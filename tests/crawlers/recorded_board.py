"""A fixture board that answers its API with a recorded answer of a real board (tests/crawlers/answers/).

The recording's URL hosts are written as `http://127.0.0.1:8000` (`http:\\/\\/127.0.0.1:8000` in a JSON
answer that escapes its slashes); the board puts its own root there when it serves the answer. The
first page is the recording, every later page an empty body (the end after a short page); files are
generated images of the URL's type, so a download is `md5_mismatch` against the real md5 the recording
declares.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.demo.fixture_site import FixtureSite, _Handler, generated_post

ANSWERS = Path(__file__).parent / "answers"
RECORDED_HOST = "http://127.0.0.1:8000"
CONTENT_TYPES = {"xml": "application/xml; charset=utf-8", "json": "application/json; charset=utf-8"}


def recorded(name: str) -> str:
    return (ANSWERS / name).read_text(encoding="utf-8")


def served(name: str, root: str) -> str:
    """The recording as the board at `root` serves it: its own root wherever the recorded host stands."""
    text = recorded(name).replace(RECORDED_HOST, root)
    return text.replace(RECORDED_HOST.replace("/", "\\/"), root.replace("/", "\\/"))


class _RecordedHandler(_Handler):
    def _route(self, path: str, query: dict[str, str]) -> int:
        board: RecordedBoard = self.fixture  # type: ignore[assignment]
        if path == "/robots.txt":
            return self._send(200, b"User-agent: *\nDisallow:\n", "text/plain")
        if path == board.api_path:
            first = query.get("pid") == "0" if "pid" in query else query.get("page") in (None, "1")
            return self._send(200, board.answers[0] if first else board.answers[1], board.content_type)
        ext = path.rsplit(".", 1)[-1].lower()
        if ext in ("jpg", "png"):
            return self._send(200, board.image(ext), "image/png" if ext == "png" else "image/jpeg")
        return self._send(404, b"not found", "text/plain")


class RecordedBoard(FixtureSite):
    """`RecordedBoard("/index.php", "gelbooru02_2017.xml", "xml")`: serves the recording at that path.

    `answer` may also be the bytes to answer; `later` is what every page after the first answers
    (default: an empty body)."""

    handler_class = _RecordedHandler

    def __init__(self, api_path: str, answer: str | bytes, kind: str, content_type: str | None = None, later: bytes = b"") -> None:
        super().__init__("danbooru", [])
        self.api_path, self.answer_name = api_path, answer
        self.content_type = content_type or CONTENT_TYPES[kind]
        self.later = later
        self._images: dict[str, bytes] = {}
        self.answers: list[bytes] = []

    def start(self) -> None:
        super().start()
        first = self.answer_name if isinstance(self.answer_name, bytes) else served(self.answer_name, self.root).encode()
        self.answers = [first, self.later]

    def image(self, ext: str) -> bytes:
        if ext not in self._images:
            self._images[ext] = generated_post(1, 7, ext=ext).body
        return self._images[ext]

    def api_paths(self) -> list[str]:
        return [r.path for r in self.requests if r.path == self.api_path]
