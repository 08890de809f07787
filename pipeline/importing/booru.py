"""`pipe import booru`: a board dump (metadata in the Danbooru API's schema plus its files) as a source.

Each post of the metadata gets the `raw.parquet` row a crawl of the board would give it: the same
Post (the Danbooru engine's `to_post`), the crawl's checks on the record (`crawlers.filters`), its
md5 duplicate check, its checks on the file's bytes (`crawlers.verify.verify_download`: md5, type,
animation), its sha256 duplicate check and its row (`crawlers.state.ledger_row`). The file is stored
as the crawl stores it, `raw/<ab>/<sha256>.<ext>`, linked or copied from the dump. What the crawl
cannot give, a post whose file the dump lacks, is `missing_file`. Posts not matching `--tags` get no
row, as the board would not list them to a crawl of that query; the summary counts them.

Resume and the lock come from the crawl's own machinery: the ledger's recorded posts are skipped
(`CrawlState`), and the run holds the `raw` stage's lock in a `StageSession`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from crawlers.config import CrawlConfig
from crawlers.engines.danbooru import DanbooruSpider
from crawlers.filters import record_rejection
from crawlers.posts import Post, post_id_of, rating_from_moebooru
from crawlers.state import CrawlState, KnownFile, ledger_row
from crawlers.verify import DownloadRejected, verify_download
from manifests import reasons
from manifests.layout import DatasetLayout
from manifests.schema import RAW, STATUS_FAILED, STATUS_OK, STATUS_REJECTED
from pipeline.importing.booru_files import find_file, store_file
from pipeline.importing.booru_metadata import record_batches
from pipeline.importing.booru_options import tag_filter
from pipeline.session import StageSession


@dataclass(frozen=True)
class BooruImport:
    source: Path
    metadata: Path
    layout: str
    link: str
    crawl: CrawlConfig  # site, root, --tags (the query column and the filter), --rating, --min-side, --exts
    save_every: float = 5.0
    # Danbooru's letters before its 2022 change (the Danbooru2017-2021 dumps): `s` was "safe", today's `g`.
    old_ratings: bool = False
    batch_rows: int = 500  # rows per ledger write with --save-every 0 (a small part each)


@dataclass
class ImportCounts:
    listed: int = 0
    not_matching: int = 0
    already_recorded: int = 0
    new: Counter = field(default_factory=Counter)  # (status, reason) -> posts
    stored: Counter = field(default_factory=Counter)  # hardlink/reflink/copy/symlink -> files


class ImportState(CrawlState):
    """The crawl's resume state without its orphan adoption: an import stores a file under the same
    name again on a rerun (the dump still has it), so the row is the first run's, detail included."""

    def _adopt_orphans(self) -> None:
        return None


def run_booru_import(job: BooruImport, on_row: Callable[[dict], None] | None = None) -> ImportCounts:
    """Import every post of the metadata into the crawl's ledger under the raw stage's lock."""
    matches = tag_filter(job.crawl.tags)
    counts = ImportCounts()
    with StageSession(job.crawl.root, RAW.stage, RAW, save_every=job.save_every) as session:
        session.saved_note = "the rows recorded so far are saved"
        state = ImportState(job.crawl, session.ledger.read())
        spider = DanbooruSpider(job.crawl, state)
        if job.old_ratings:
            spider.rating_from = rating_from_moebooru  # the same s/q/e, with s meaning safe
        with session.progress("import", total=None, enabled=job.crawl.progress) as bar:
            for records in record_batches(job.metadata, job.batch_rows):
                rows = [row for row in (_row_for(record, job, state, spider, matches, counts) for record in records) if row]
                session.record(rows)
                for row in rows:
                    counts.new[(row["status"], row["reason"])] += 1
                    if on_row is not None:
                        on_row(row)
                bar.advance(len(records))
    # The crawl's summary fields, so `pipe status` and a job read an import like a crawl.
    session.write_summary({
        "source": str(job.source), "metadata": str(job.metadata), "tags": job.crawl.tags, "posts_listed": counts.listed,
        "processed": sum(counts.new.values()), "not_matching_tags": counts.not_matching, "already_recorded": counts.already_recorded,
        "new_counts": [[status, reason or "", n] for (status, reason), n in sorted(counts.new.items(), key=str)],
    })
    return counts


def _row_for(record: dict, job: BooruImport, state: ImportState, spider: DanbooruSpider, matches, counts: ImportCounts) -> dict | None:  # noqa: ANN001
    counts.listed += 1
    post = spider.to_post(record) if post_id_of(record.get("id")) is not None else spider.bad_id_post(record)
    if post.post_id is not None and not matches(post.tags):
        counts.not_matching += 1
        return None
    if post.ledger_id in state.known_posts:
        counts.already_recorded += 1
        return None
    row = decide(post, job, state, counts)
    state.recorded(row)
    return row


def decide(post: Post, job: BooruImport, state: ImportState, counts: ImportCounts) -> dict:
    """The post's ledger row, with the crawl's checks in the crawl's order."""
    query = job.crawl.tags
    if post.post_id is None:
        return ledger_row(post, query, STATUS_REJECTED, reasons.BAD_POST_ID, f"the metadata lists a post with id {post.bad_id!r}: not a whole number in 1..2^63-1")
    refused = record_rejection(post, job.crawl)
    if refused:
        return ledger_row(post, query, STATUS_REJECTED, *refused)
    known = state.by_md5.get((post.md5 or "").lower()) if post.md5 else None
    if known is not None:
        return ledger_row(post, query, STATUS_REJECTED, reasons.DUPLICATE, f"same md5 as {known.owner}, already downloaded", duplicate_of=known.owner)
    path = find_file(job.source, job.layout, post.post_id, post.md5, post.file_ext)
    if path is None:
        return ledger_row(post, query, STATUS_REJECTED, reasons.MISSING_FILE, f"no file for post {post.post_id} in {job.source} (--layout {job.layout})")
    return _take_file(post, path, job, state, counts)


def _take_file(post: Post, path: Path, job: BooruImport, state: ImportState, counts: ImportCounts) -> dict:
    query, config = job.crawl.tags, job.crawl
    if path.stat().st_size > config.max_file_bytes:
        return ledger_row(post, query, STATUS_REJECTED, reasons.TOO_LARGE, f"{path.stat().st_size:,} bytes, over the {config.max_file_bytes:,}-byte limit")
    try:
        body = path.read_bytes()
    except OSError as exc:  # permissions, an I/O error on the dump's disk: the next run tries again
        return ledger_row(post, query, STATUS_FAILED, reasons.READ_ERROR, f"{path}: {exc.strerror or exc}")
    try:
        image = verify_download(body, post.md5, config.exts, config.max_file_bytes)
    except DownloadRejected as exc:
        return ledger_row(post, query, STATUS_REJECTED, exc.reason, exc.detail)
    known = state.by_sha256.get(image.sha256)
    if known is not None:
        detail = f"same content (sha256) as {known.owner}"
        return ledger_row(post, query, STATUS_REJECTED, reasons.DUPLICATE, detail, duplicate_of=known.owner)
    relative = state.file_path(image.sha256, image.ext)
    how = store_file(path, config.root / relative, job.link, DatasetLayout(config.root).tmp(RAW.stage))
    counts.stored[how] += 1
    state.file_stored(relative)
    return ledger_row(post, query, STATUS_OK, None, None, KnownFile(image.sha256, relative, image.size, post.ledger_id))

