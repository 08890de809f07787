"""`pipe import booru`'s options checked as a whole: by the command before it runs and by `pipe run`
before a job's first stage (the same function, so both refuse the same values with the same line)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from crawlers.config import CrawlConfig
from crawlers.sites import SITES, SiteRecord
from pipeline.errors import PipeError
from pipeline.importing.booru_files import LAYOUTS, LINK_MODES
from pipeline.importing.booru_metadata import MetadataError, metadata_format


def tag_filter(query: str) -> Callable[[str], bool]:
    """`--tags` as the board applies it: every plain tag present, every `-tag` absent."""
    words = query.split()
    metatags = [word for word in words if ":" in word]
    if metatags:
        raise ValueError(f"--tags for an import takes plain tags and -tags, not metatags like {metatags[0]!r}")
    wanted = {word for word in words if not word.startswith("-")}
    unwanted = {word[1:] for word in words if word.startswith("-")}
    return lambda tags: wanted.issubset(tags.split()) and unwanted.isdisjoint(tags.split())


def check_source(source: Path) -> None:
    if not source.is_dir():
        raise PipeError(f"dump folder not found: {source}")


def import_crawl_config(
    *, source: Path, root: Path, metadata: Path | None, layout: str, link: str, site: str, tags: str, rating: str,
    min_side: int, exts: str, max_file_mb: float, progress: bool = True,
) -> CrawlConfig:
    """The crawl settings an import applies (its filters, its ledger's site), or PipeError naming the option."""
    if metadata is None:
        raise PipeError("--metadata is required: the dump's post metadata (JSON lines, Parquet or a JSON array)")
    for flag, value, allowed in (("--layout", layout, LAYOUTS), ("--link", link, LINK_MODES)):
        if value not in allowed:
            raise PipeError(f"{flag} must be one of: {', '.join(allowed)} (got {value!r})")
    check_source(source)
    board = SITES.get(site) or SiteRecord(site, "danbooru", "https://invalid.invalid", per_page=200)
    try:
        if not metadata.is_file():
            raise MetadataError(f"metadata file not found: {metadata}")
        metadata_format(metadata)
        tag_filter(tags)
        return CrawlConfig(
            site=board, root=root.resolve(), tags=tags, ratings=tuple(rating.split(",")), min_side=min_side,
            exts=tuple(exts.split(",")), max_file_mb=max_file_mb, progress=progress,
        )
    except (ValueError, OSError) as exc:
        raise PipeError(str(exc)) from None
