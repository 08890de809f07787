"""`pipe weights fetch NAME|all`: download the published weights files pipe uses, verified.

Each file is downloaded with urllib into `<weights dir>/.partial/<published name>.part`, hashed as it
arrives, checked against the SHA-256 pinned in `extractors.weights.SOURCES` (a full digest, or the
prefix a torch.hub file name carries), and only then moved into place with os.replace: the final
name never holds a half or unverified file.

- A wrong hash deletes the download: nothing is kept.
- A cut transfer (connection closed early, fewer bytes than Content-Length, a timeout) keeps the
  partial file; the next fetch asks for the rest with `Range: bytes=N-` (206: append; 200: the server
  ignores ranges, start over; 416: start over, unless the partial already is the whole file).
- A file already in place is hashed: a match is left alone, a mismatch is not overwritten without
  --force.
- sketchKeras publishes a Keras file (mod.h5): it is downloaded, then converted into sketchkeras.pt
  by the same code as `pipe weights convert` (`convert_published`).

One `pipe weights fetch` runs at a time per weights folder (an flock on the folder itself, so
nothing is left behind).
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NoReturn

from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from extractors.weights import SOURCES, WeightsSource, weights_dir
from pipeline import __version__
from pipeline.console import console
from pipeline.errors import Interrupted, PipeError

# Seconds to wait for the connection and for each read; a stalled transfer counts as cut off.
TIMEOUT_S = 60.0
CHUNK = 1 << 20
PARTIAL_DIR = ".partial"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


class FetchFailed(Exception):
    """One name's download failed; the message is one line (URL and why, and what was kept)."""


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # "fetched", "present" or "failed"
    message: str


# --------------------------------------------------------------------------- names


def downloadable_names() -> list[str]:
    return [name for name, source in SOURCES.items() if source.downloadable]


def resolve_names(name: str, url: str | None) -> list[str]:
    """The names `NAME|all` stands for; PipeError (one line, exit 2) for what cannot be fetched."""
    wanted = name.strip().lower()
    choices = ", ".join(downloadable_names())
    if url is not None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise PipeError(f"--url must be an http:// or https:// URL, got {url!r}")
    if wanted == "all":
        if url is not None:
            raise PipeError("--url is a mirror of one file: give a single NAME with it, not all")
        return downloadable_names()
    source = SOURCES.get(wanted)
    if source is None:
        raise PipeError(f"unknown weights {name!r}: choose one of {choices}, or all")
    if not source.downloadable:
        raise PipeError(f"{wanted} is not published for download, pipe trains it: {source.how_to_get}")
    return [wanted]


def expected_digest(source: WeightsSource) -> str | None:
    return source.sha256.lower() if source.sha256 else None


def digest_matches(digest: str, expected: str | None) -> bool:
    """Full digests must be equal; a pinned prefix (torch.hub's file-name hash) must start the digest."""
    if expected is None:
        return True
    return digest == expected if len(expected) == 64 else digest.startswith(expected)


def describe_pin(expected: str | None) -> str:
    if expected is None:
        return "no published SHA-256"
    return expected if len(expected) == 64 else f"SHA-256 prefix {expected}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


# --------------------------------------------------------------------------- conversion


def convert_published(model: str, source: Path, target: Path) -> str:
    """Convert a published weights file into pipe's (today: sketchKeras's mod.h5 into sketchkeras.pt),
    written atomically; returns the one-line report. A file that is not the model raises PipeError."""
    from extractors.sketchkeras.keras_file import KerasFileError
    from extractors.sketchkeras.weights import convert_keras_model

    if model != "sketchkeras":
        raise PipeError(f"pipe can convert: sketchkeras (got {model!r})")
    try:
        report = convert_keras_model(source, target)
    except KerasFileError as exc:
        raise PipeError(str(exc)) from None
    return (
        f"converted {source.name} (Keras {report.keras_version or '?'}, {report.backend or '?'} backend, "
        f"{report.layers} layers, {report.parameters:,} parameters, sha256 {report.sha256[:12]}) -> {target}"
    )


def _check_present(name: str, source: WeightsSource, path: Path) -> tuple[bool, str]:
    """Whether the file in place is the right one, and what was found."""
    expected = expected_digest(source)
    if source.download_name is None:
        digest = sha256_of(path)
        if digest_matches(digest, expected):
            return True, f"sha256 {digest[:12]}"
        return False, f"its SHA-256 is {digest}, expected {describe_pin(expected)}"
    # A converted file: it must load as one, and record the pinned source file if there is a pin.
    import torch

    from extractors.sketchkeras.keras_file import KerasFileError
    from extractors.sketchkeras.weights import load_converted

    try:
        load_converted(path)
        recorded = torch.load(path, map_location="cpu", weights_only=True)["source"]["sha256"]
    except (KerasFileError, KeyError, TypeError, RuntimeError, OSError) as exc:
        return False, f"it is not a file written by `pipe weights convert` ({exc})"
    if not digest_matches(recorded, expected):
        return False, f"it was converted from a file with SHA-256 {recorded}, expected {describe_pin(expected)}"
    return True, f"converted from {source.published_name} with sha256 {recorded[:12]}"


# --------------------------------------------------------------------------- download


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """One fetch per weights folder at a time: an flock on the folder itself (no lock file left)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipeError(f"another `pipe weights fetch` is writing to {folder}; wait for it to finish") from None
        yield
    finally:
        os.close(fd)


class _Restart(Exception):
    """The server cannot continue the partial file: download it again from the start."""


def _open(url: str, offset: int) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"pipe/{__version__} (pipe weights fetch)", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)  # noqa: S310 - http(s) only


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
    if isinstance(exc, TimeoutError):
        return f"no data for {TIMEOUT_S:g} s (timed out)"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed early"
    return str(exc) or type(exc).__name__


class Downloader:
    """Downloads one URL into a partial file, resuming it, hashing as it goes; shows a byte progress bar."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def download(self, name: str, url: str, partial: Path, expected: str | None) -> str:
        """The SHA-256 of the complete, verified file now in `partial`; FetchFailed otherwise (a cut
        transfer keeps `partial` for the next run, a wrong hash deletes it)."""
        partial.parent.mkdir(parents=True, exist_ok=True)
        try:
            digest = self._attempt(name, url, partial)
        except _Restart:
            partial.unlink(missing_ok=True)
            digest = self._attempt(name, url, partial)
        if not digest_matches(digest, expected):
            partial.unlink(missing_ok=True)
            raise FetchFailed(f"{url}: SHA-256 mismatch, expected {describe_pin(expected)}, got {digest}; the download was deleted")
        return digest

    def _attempt(self, name: str, url: str, partial: Path) -> str:
        have = partial.stat().st_size if partial.is_file() else 0
        try:
            response = _open(url, have)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and have:
                whole = _UNSATISFIED_RANGE.match(exc.headers.get("Content-Range", "") or "")
                if whole and int(whole.group(1)) == have:
                    return sha256_of(partial)  # the partial already is the whole file (killed before the move)
                raise _Restart from None
            raise FetchFailed(f"{url}: {_reason(exc)}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            raise FetchFailed(f"{url}: {_reason(exc)}") from None
        with response:
            status = response.status
            length_header = response.headers.get("Content-Length")
            length = int(length_header) if length_header and length_header.isdigit() else None
            if have and status == 206:
                ranged = _CONTENT_RANGE.match(response.headers.get("Content-Range", "") or "")
                if ranged is None or int(ranged.group(1)) != have:
                    raise _Restart
                total = int(ranged.group(3)) if ranged.group(3) != "*" else (have + length if length is not None else None)
                hasher = hashlib.sha256()
                with partial.open("rb") as existing:
                    for block in iter(lambda: existing.read(CHUNK), b""):
                        hasher.update(block)
                mode = "ab"
            elif 200 <= status < 300 and status != 206:
                have, total, hasher, mode = 0, length, hashlib.sha256(), "wb"
            else:
                raise FetchFailed(f"{url}: unexpected HTTP {status} {response.reason}")
            if total is not None:
                free = shutil.disk_usage(partial.parent).free
                if free < total - have:
                    raise FetchFailed(f"not enough space in {partial.parent}: {_size(total - have)} to download, {_size(free)} free")
            task = self.progress.add_task(name, total=total, completed=have)
            received = 0
            try:
                with partial.open(mode) as out:
                    while True:
                        try:
                            # read1: what one socket read returns, so a timeout loses none of what arrived
                            block = response.read1(CHUNK)
                        except (OSError, http.client.HTTPException, ValueError) as exc:
                            self._cut(url, partial, have + received, total, _reason(exc))
                        if not block:
                            break
                        try:
                            out.write(block)
                        except OSError as exc:
                            raise FetchFailed(f"cannot write {partial}: {exc.strerror or exc}; run the command again to resume") from None
                        hasher.update(block)
                        received += len(block)
                        self.progress.update(task, advance=len(block))
                    out.flush()
                    os.fsync(out.fileno())
            finally:
                self.progress.remove_task(task)
            if length is not None and received < length:
                self._cut(url, partial, have + received, total, "connection closed early")
        return hasher.hexdigest()

    @staticmethod
    def _cut(url: str, partial: Path, done: int, total: int | None, reason: str) -> NoReturn:
        raise FetchFailed(
            f"{url}: transfer cut off after {_size(done)} of {_size(total)} ({reason}); "
            f"{partial.name} is kept and the next `pipe weights fetch` resumes it"
        )


def make_download_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


# --------------------------------------------------------------------------- one name, many names


def fetch_one(name: str, downloader: Downloader, url: str | None = None, force: bool = False) -> Outcome:
    """Fetch one name into the weights folder; never raises for a failed download (Outcome 'failed')."""
    source = SOURCES[name]
    assert source.url is not None
    url = url or source.url
    folder = weights_dir()
    final = folder / source.file_name
    partial_dir = folder / PARTIAL_DIR
    partial = partial_dir / f"{source.published_name}.part"
    expected = expected_digest(source)
    try:
        if final.exists() and not final.is_file():
            raise FetchFailed(f"{final} is in the way: it is not a file")
        if final.exists() and not force:
            ok, found = _check_present(name, source, final)
            if ok:
                partial.unlink(missing_ok=True)
                return Outcome(name, "present", f"already present and verified ({found}): {final}")
            raise FetchFailed(f"{final} is present but {found}; it was left alone: pass --force to replace it")
        digest = downloader.download(name, url, partial, expected)
        checked = "verified" if expected else "no published SHA-256 to check"
        if source.download_name is None:
            size = partial.stat().st_size
            os.replace(partial, final)
            return Outcome(name, "fetched", f"fetched {_size(size)} from {url}, sha256 {digest} ({checked}) -> {final}")
        # A published file pipe converts (sketchKeras's mod.h5): convert it, then drop the download.
        downloaded = partial_dir / source.published_name
        os.replace(partial, downloaded)
        try:
            report = convert_published(name, downloaded, final)
        except PipeError as exc:
            raise FetchFailed(f"{url}: the download (sha256 {digest}) is not {source.published_name}: {exc}; it was deleted") from None
        finally:
            downloaded.unlink(missing_ok=True)
        return Outcome(name, "fetched", f"fetched {source.published_name} from {url}, sha256 {digest} ({checked}); {report}")
    except FetchFailed as exc:
        return Outcome(name, "failed", str(exc))
    except OSError as exc:  # the weights folder itself: no permission, a full disk, an unreadable file
        return Outcome(name, "failed", f"{exc.filename or folder}: {exc.strerror or exc}")
    finally:
        try:
            partial_dir.rmdir()  # only when empty: a kept partial file stays
        except OSError:
            pass


def fetch(names: list[str], url: str | None = None, force: bool = False) -> list[Outcome]:
    """Fetch each name in turn (going on after a failure), printing one line per name."""
    folder = weights_dir()
    outcomes: list[Outcome] = []
    with folder_lock(folder), make_download_progress() as progress:
        downloader = Downloader(progress)
        for name in names:
            try:
                outcome = fetch_one(name, downloader, url=url, force=force)
            except KeyboardInterrupt:
                raise Interrupted(
                    f"interrupted while fetching {name}: the partial download stays in {folder / PARTIAL_DIR}; "
                    f"run `pipe weights fetch {name}` again to resume"
                ) from None
            outcomes.append(outcome)
            style = {"fetched": "[green]", "present": "[green]", "failed": "[red]"}[outcome.status]
            label = "failed" if outcome.status == "failed" else "ok"
            progress.console.print(f"{style}{label}[/] {name}: {escape(outcome.message)}", soft_wrap=True, highlight=False)
    return outcomes
