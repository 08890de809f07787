"""`pipe import booru`: a board dump (Danbooru20xx or any metadata file in the Danbooru API's schema) into raw.parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.commands.import_group import import_app
from pipeline.errors import PipeError

FILTER_PANEL = "Filters (the crawl's own: the same options, defaults and reasons as pipe crawl)"
SOURCE_PANEL = "The dump"

BOORU_EPILOG = (
    "[bold]Examples[/]\n\n"
    "pipe import booru danbooru2021 ROOT --metadata danbooru2021/metadata/posts.json   (original/0NNN/<id>.<ext>)\n\n"
    "pipe import booru my-dump ROOT --metadata posts.parquet --layout flat --tags '1girl -comic'\n\n"
    "then   pipe prepare ROOT/raw.parquet ROOT\n\n"
    "[bold]Reasons[/] (raw.parquet, as after pipe crawl): unsupported_ext, rating_filtered, too_small, too_large, duplicate "
    "(same md5 or same bytes as a post kept before it in the metadata), missing_file (the dump lacks the file), md5_mismatch, "
    "not_an_image, unsupported_type, animated, bad_post_id."
)


@import_app.command("booru", epilog=BOORU_EPILOG)
def booru(
    source: Annotated[Path, typer.Argument(help="The dump's folder of files (see --layout).", show_default=False)],
    root: Annotated[Path, typer.Argument(help="The dataset folder; created if needed.", show_default=False)],
    metadata: Annotated[Path, typer.Option(help="The posts' metadata in the Danbooru API's schema: JSON lines, Parquet or a JSON array. [required]", rich_help_panel=SOURCE_PANEL, show_default=False)] = None,  # type: ignore[assignment]
    layout: Annotated[str, typer.Option(help="danbooru20xx: SOURCE/original/0NNN/<id>.<ext> (NNN = id % 1000). flat: SOURCE/<id>.<ext> or SOURCE/<md5>.<ext>.", rich_help_panel=SOURCE_PANEL)] = "danbooru20xx",
    link: Annotated[str, typer.Option(help="How files reach ROOT/raw/: auto (hard link, else reflink, else copy), copy, hardlink, symlink.", rich_help_panel=SOURCE_PANEL)] = "auto",
    site: Annotated[str, typer.Option(help="The board the dump is of: names the posts in the ledger (danbooru:<id>), so a later pipe crawl of it skips them.", rich_help_panel=SOURCE_PANEL)] = "danbooru",
    old_ratings: Annotated[bool, typer.Option(help="The metadata uses Danbooru's rating letters from before 2022 (the Danbooru2017-2021 dumps): s meant safe and is recorded g; q and e as they are.", rich_help_panel=SOURCE_PANEL)] = False,
    tags: Annotated[str, typer.Option(help="Only posts with all these tags and none of the -tags (no row for others, as a crawl of this query would not list them).", rich_help_panel=FILTER_PANEL)] = "",
    rating: Annotated[str, typer.Option(help="Ratings to keep, Danbooru's letters g,s,q,e; others are recorded rating_filtered.", rich_help_panel=FILTER_PANEL)] = "g,s",
    min_side: Annotated[int, typer.Option(min=1, help="Reject (too_small) posts whose declared short side is under this.", rich_help_panel=FILTER_PANEL)] = 512,
    exts: Annotated[str, typer.Option(help="Image types to keep (jpg, png, webp, gif, bmp, avif); others unsupported_ext.", rich_help_panel=FILTER_PANEL)] = "jpg,png,webp",
    max_file_mb: Annotated[float, typer.Option(min=0.01, help="Reject (too_large) larger files.", rich_help_panel=FILTER_PANEL)] = 64.0,
    save_every: Annotated[float, typer.Option(min=0.0, help="Save rows to the ledger at least this often (seconds): what a killed run can lose.")] = 5.0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Import a board dump: every post of --metadata gets the raw.parquet row `pipe crawl` would give it.

    The file of each post is checked (md5, type) and stored as ROOT/raw/<ab>/<sha256>.<ext>, as a crawl stores it.
    Running the same command again resumes: posts already recorded are skipped.
    """
    from pipeline.importing.booru import BooruImport, run_booru_import
    from pipeline.importing.booru_files import LinkError
    from pipeline.importing.booru_metadata import MetadataError
    from pipeline.importing.booru_options import import_crawl_config
    from pipeline.session import make_dataset_folder

    crawl = import_crawl_config(
        source=source, root=root, metadata=metadata, layout=layout, link=link, site=site, tags=tags, rating=rating,
        min_side=min_side, exts=exts, max_file_mb=max_file_mb, progress=progress,
    )
    make_dataset_folder(crawl.root)
    job = BooruImport(source=source.resolve(), metadata=metadata, layout=layout, link=link, crawl=crawl, save_every=save_every, old_ratings=old_ratings)
    try:
        counts = run_booru_import(job)
    except (MetadataError, LinkError) as exc:
        raise PipeError(f"{exc}; the rows recorded so far are saved") from None
    _print_counts(counts)


def _print_counts(counts) -> None:  # noqa: ANN001 - an ImportCounts
    from pipeline.console import console

    new = sum(counts.new.values())
    by_reason = ", ".join(f"{status} {reason or ''}".strip() + f" {n:,}" for (status, reason), n in sorted(counts.new.items(), key=lambda kv: -kv[1]))
    console.print(f"import: {counts.listed:,} posts in the metadata; {new:,} new rows ({by_reason or 'none'})", soft_wrap=True)
    console.print(
        f"  {counts.already_recorded:,} already recorded, {counts.not_matching:,} not matching --tags (no row, as a crawl of the query)"
        + (f"; files stored: {', '.join(f'{how} {n:,}' for how, n in sorted(counts.stored.items()))}" if counts.stored else ""),
        soft_wrap=True,
    )
