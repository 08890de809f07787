"""The checkpoint file itself: a torch zip that loads as weights alone, followed by a SHA-256 trailer.

Loading never unpickles anything but tensors and plain containers (`torch.load(weights_only=True)`), so
a file cannot run code when pipe opens it. The trailer, `PIPE-CHECKPOINT-SHA256:<64 hex>\\n` after the
zip's last byte, is the digest of every byte before it: any changed byte, the trailer's own included,
is caught before the payload is used (torch reads a zip from its central directory and ignores what
follows it, so the file stays a plain `torch.load`-able file). A file without a valid trailer is never
loaded: its zip and pickle are inspected without executing anything, to say what it is.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import Any

import torch

from manifests.atomic import atomic_target

TRAILER_TAG = b"PIPE-CHECKPOINT-SHA256:"
TRAILER_SIZE = len(TRAILER_TAG) + 64 + 1
# Errors of a full disk (or a full quota): re-raised naming the checkpoint, not its temporary name.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# What weights-only loading rebuilds (besides tensors and containers), matched by exact type: a NumPy
# float is a float subclass that it would refuse.
PLAIN_SCALARS = (str, int, float, bool, type(None), bytes, torch.dtype, torch.device)


def non_plain(value: Any, where: str = "payload") -> str | None:
    """Where in `value` something sits that weights-only loading refuses (a NumPy scalar or array, a
    Path, any other object), or None when it all loads back: found at save time, not at resume."""
    if isinstance(value, torch.Tensor) or type(value) in PLAIN_SCALARS:
        return None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return f"{where} (a {type(value).__module__}.{type(value).__qualname__})"
    return next((found for key, item in items if (found := non_plain(item, f"{where}[{key!r}]"))), None)


def signed_bytes(payload: dict[str, Any]) -> bytes:
    """The bytes of a checkpoint file for `payload`: its torch serialization and the trailer."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    return body + TRAILER_TAG + hashlib.sha256(body).hexdigest().encode("ascii") + b"\n"


def write_signed(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` atomically (the previous file stays intact if anything fails, a full disk too).

    A full disk raises OSError(ENOSPC, ..., path) whichever call saw it (the write, the fsync).
    """
    path = Path(path)
    found = non_plain(payload)
    if found is not None:
        raise TypeError(f"checkpoint {path}: {found} would need full unpickling to load; store tensors, numbers, strings and plain containers")
    try:
        data = signed_bytes(payload)
        with atomic_target(path, durable=True) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(data)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise OSError(exc.errno, os.strerror(exc.errno), str(path)) from exc
        raise


def _signed_body(data: bytes) -> bytes | None:
    """The bytes the trailer covers, or None when `data` ends in no well-formed trailer."""
    trailer = data[-TRAILER_SIZE:]
    if len(data) <= TRAILER_SIZE or not trailer.startswith(TRAILER_TAG) or not trailer.endswith(b"\n"):
        return None
    return data[:-TRAILER_SIZE]


def read_signed(path: Path, map_location: str | torch.device, describe_unsigned) -> Any:
    """The payload of a checkpoint file, checked against its trailer and loaded as weights alone.

    `describe_unsigned(path, strings)` gives the ValueError message for a readable zip without a valid
    trailer (`strings`: the string constants of its pickle, read without running it). Raises ValueError
    naming the file when it is damaged, unsigned, or needs full unpickling.
    """
    data = path.read_bytes()
    body = _signed_body(data)
    if body is None:
        strings = pickle_strings(data)
        if strings is None:
            if data.startswith(b"PK\x03\x04"):
                raise ValueError(f"{path} is damaged (truncated or corrupted): it is a torch file that cannot be read whole")
            raise ValueError(describe_unsigned(path, set()))
        raise ValueError(describe_unsigned(path, strings))
    recorded = data[-TRAILER_SIZE + len(TRAILER_TAG):-1]
    if hashlib.sha256(body).hexdigest().encode("ascii") != recorded:
        raise ValueError(f"{path} is damaged: checksum mismatch (its bytes changed after pipe wrote it; use another copy or train again)")
    try:
        return torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"{path} is refused: it holds Python objects that only full unpickling loads, which could run its code") from None
    except Exception:  # noqa: BLE001 - a file with a matching digest that torch still cannot read
        raise ValueError(f"{path} is damaged (truncated or corrupted)") from None


def pickle_strings(data: bytes) -> set[str] | None:
    """The string constants in the pickle of a torch zip, found without executing it; None when `data`
    is no zip, a member fails its CRC, or the pickle is cut short."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if archive.testzip() is not None:
                return None
            pickled = next((name for name in archive.namelist() if name.endswith("data.pkl")), None)
            if pickled is None:
                return None
            code = archive.read(pickled)
        return {arg for _, arg, _ in pickletools.genops(code) if isinstance(arg, str)}
    except (zipfile.BadZipFile, ValueError, EOFError, NotImplementedError, OSError, KeyError):
        return None
