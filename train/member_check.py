"""Shard members checked against the SHA-256 digests their shard's sidecar records, before they are decoded.

A flipped bit in a PNG or JPEG often still decodes, to wrong pixels and without an error; only the
digest `pipe shard` recorded for each member tells. `MemberCheck` finds a local shard's sidecar next
to its tar (`NNNNN.parquet` beside `NNNNN.tar`), reads its digests once per shard, and raises
`DamagedMember` for a sample whose member differs. Shards written before digests were recorded, and
shards read from URLs (no sidecar beside them), are passed through unchecked.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from manifests.shards import ShardFileError, member_digests

log = logging.getLogger(__name__)


class DamagedMember(ValueError):
    """A sample's member whose bytes differ from the digest recorded for it: the shard is damaged."""

    def __init__(self, shard: str, key: str, member: str) -> None:
        super().__init__(f"{shard}: sample {key}: {member} differs from the SHA-256 its sidecar records (damaged shard; `pipe shard ROOT --verify` lists all)")
        self.shard, self.key, self.member = shard, key, member


def sidecar_of(url: str) -> Path | None:
    """The sidecar beside a local shard tar, or None (a URL, a pipe, a tar without one)."""
    if "://" in url or url.startswith("pipe:") or not url.endswith(".tar"):
        return None
    sidecar = Path(url).with_suffix(".parquet")
    return sidecar if sidecar.is_file() else None


class MemberCheck:
    """A picklable map stage: returns the sample when every member it holds matches its digest."""

    def __init__(self) -> None:
        self._url: str | None = None
        self._digests: dict[str, dict[str, str]] = {}
        self._warned: set[str] = set()  # shards whose unreadable sidecar was named already (epochs come back to them)

    def __getstate__(self) -> dict:
        return {}  # each worker reads the sidecars of its own shards

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def _digests_for(self, url: str) -> dict[str, dict[str, str]]:
        if url != self._url:  # samples come shard by shard: keep one shard's digests
            self._url, self._digests = url, {}
            sidecar = sidecar_of(url)
            if sidecar is not None:
                try:
                    self._digests = member_digests(sidecar)
                except ShardFileError as exc:
                    # Members cannot be checked, and decoding may still catch damage: say so once per shard.
                    if url not in self._warned:
                        self._warned.add(url)
                        log.warning("members of %s are not checked: %s", url, exc)
        return self._digests

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        url, key = sample.get("__url__"), sample["__key__"]
        if not url:
            return sample
        recorded = self._digests_for(url)
        if not recorded:
            return sample
        digests = recorded.get(key)
        for member, payload in sample.items():
            if member.startswith("__"):
                continue
            if digests is None or hashlib.sha256(payload).hexdigest() != digests.get(member):
                raise DamagedMember(url, key, member)
        return sample


class SkipDamaged:
    """A webdataset map handler: a damaged member skips its sample with one warning line naming the shard
    and sample and the count so far; any other error goes on to `fallback`."""

    def __init__(self, fallback) -> None:  # noqa: ANN001 - a webdataset handler
        self.fallback, self.skipped = fallback, 0

    def __call__(self, exn: Exception) -> bool:
        if not isinstance(exn, DamagedMember):
            return self.fallback(exn)
        self.skipped += 1
        log.warning("skipped: %s (%d damaged sample(s) skipped by this loader worker)", exn, self.skipped)
        return True
