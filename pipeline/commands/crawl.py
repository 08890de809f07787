"""`pipe crawl`: download originals from an image board."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.commands.app import app
from pipeline.commands.common import RUN_PANEL, verbosity
from pipeline.errors import PipeError

QUERY_PANEL = "What to take"
POLITE_PANEL = "Politeness"
ACCOUNT_PANEL = "Account"


@app.command()
def crawl(
    site: Annotated[
        str,
        typer.Argument(
            help="A built-in board: danbooru, safebooru, gelbooru, yandere, konachan; or an API family "
            "(gelbooru02, moebooru, danbooru1 for Danbooru 1.x boards) with --root."
        ),
    ],
    root: Annotated[Path, typer.Argument(help="The dataset folder: originals go to ROOT/raw/, the ledger to ROOT/raw.parquet.")],
    tags: Annotated[
        str,
        typer.Option(
            "--tags", "-t",
            help="The board's own search, space-separated, e.g. \"1girl solo portrait white_background\". "
            "Danbooru lets anonymous users combine 2 tags (more answers 422): give --user/--api-key for more.",
            rich_help_panel=QUERY_PANEL,
        ),
    ],
    limit: Annotated[
        Optional[int],
        typer.Option(min=1, help="Stop once this many posts of this query are downloaded, counting earlier runs into ROOT. (default: no limit)", show_default=False, rich_help_panel=QUERY_PANEL),
    ] = None,
    rating: Annotated[
        str,
        typer.Option(help="Ratings to download, Danbooru's letters: g(eneral), s(ensitive), q(uestionable), e(xplicit). Other boards' \"safe\" counts as g. Others are recorded rating_filtered.", rich_help_panel=QUERY_PANEL),
    ] = "g,s",
    min_side: Annotated[int, typer.Option(min=1, help="Skip (too_small) posts whose declared short side is under this, without downloading them.", rich_help_panel=QUERY_PANEL)] = 512,
    exts: Annotated[
        str,
        typer.Option(help="Image types to download (jpg, png, webp, gif, bmp, avif). Videos, archives and Flash are never downloaded (unsupported_ext); animated GIFs are rejected (animated).", rich_help_panel=QUERY_PANEL),
    ] = "jpg,png,webp",
    max_file_mb: Annotated[float, typer.Option(min=0.01, help="Skip or cancel files larger than this (too_large).", rich_help_panel=QUERY_PANEL)] = 64.0,
    per_page: Annotated[Optional[int], typer.Option(min=1, help="Posts per API page. (default: the API's maximum: Danbooru 200, Gelbooru 100, Safebooru 1000, Moebooru 100)", show_default=False, rich_help_panel=QUERY_PANEL)] = None,
    site_root: Annotated[Optional[str], typer.Option("--root", help="Base URL of another instance of the same API family (a mirror, a self-hosted board, a test server).", rich_help_panel=QUERY_PANEL)] = None,
    api_format: Annotated[
        Optional[str],
        typer.Option(
            "--format",
            help="What the board's API answers: json, xml (Gelbooru 0.2 installs without JSON, Danbooru's posts.xml, Moebooru's post.xml), "
            "or auto (ask JSON, read either by the answer's Content-Type and first bytes). (default: the site's, json for every built-in board)",
            show_default=False,
            rich_help_panel=QUERY_PANEL,
        ),
    ] = None,
    api_path: Annotated[
        Optional[str],
        typer.Option(
            help="The API's path on the board when it is not the engine's usual one, e.g. /post/index.json for a Danbooru 1.x board "
            "under the moebooru engine; {ext} becomes json or xml. (default: /posts.json, /index.php, /post.json, /post/index.json by engine)",
            show_default=False,
            rich_help_panel=QUERY_PANEL,
        ),
    ] = None,
    file_hosts: Annotated[
        Optional[str],
        typer.Option(
            help="Comma-separated hosts files may be downloaded from besides the board's own (host, host:port or *.domain). "
            "(default: the board's CDN hosts, e.g. cdn.donmai.us for danbooru, files.yande.re for yandere; none with --root) "
            "File URLs anywhere else, or not http(s), are never requested: unsafe_url.",
            show_default=False,
            rich_help_panel=QUERY_PANEL,
        ),
    ] = None,
    interval: Annotated[
        Optional[float],
        typer.Option(min=0.0, help="Minimum seconds between two API requests. (default: the site's, 1.0 s for every built-in board; Danbooru's own clients keep 0.5-1.5 s)", show_default=False, rich_help_panel=POLITE_PANEL),
    ] = None,
    connections: Annotated[int, typer.Option(min=1, max=16, help="Parallel file downloads per host (API requests always use one connection).", rich_help_panel=POLITE_PANEL)] = 2,
    autothrottle: Annotated[bool, typer.Option(help="Pace file downloads by the server's response time (Scrapy AutoThrottle).", rich_help_panel=POLITE_PANEL)] = True,
    autothrottle_target: Annotated[float, typer.Option(min=0.1, help="AutoThrottle's target of requests in flight per host.", rich_help_panel=POLITE_PANEL)] = 2.0,
    robots: Annotated[bool, typer.Option(help="Obey the site's robots.txt; disallowed files are recorded robots_disallowed.", rich_help_panel=POLITE_PANEL)] = True,
    retries: Annotated[int, typer.Option(min=0, help="Retries on 429, 5xx, timeouts and cut-off transfers.", rich_help_panel=POLITE_PANEL)] = 4,
    backoff: Annotated[float, typer.Option(min=0.0, help="Seconds before the first retry, doubling each time. 429/503 wait for the server's Retry-After instead, pausing the whole host.", rich_help_panel=POLITE_PANEL)] = 2.0,
    max_retry_wait: Annotated[float, typer.Option(min=0.0, help="A Retry-After longer than this is not waited for: the post is recorded failed and retried on the next run.", rich_help_panel=POLITE_PANEL)] = 600.0,
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds before a request times out.", rich_help_panel=POLITE_PANEL)] = 60.0,
    contact: Annotated[Optional[str], typer.Option(help="An e-mail or URL added to the User-Agent, so a board's admins can reach you rather than ban you.", rich_help_panel=POLITE_PANEL)] = None,
    user: Annotated[Optional[str], typer.Option(help="Account name (Danbooru login, Gelbooru user id, Moebooru login).", rich_help_panel=ACCOUNT_PANEL)] = None,
    api_key: Annotated[Optional[str], typer.Option(envvar="PIPE_API_KEY", help="API key (Moebooru: password hash) for --user; also read from PIPE_API_KEY.", rich_help_panel=ACCOUNT_PANEL)] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.", rich_help_panel=RUN_PANEL)] = True,
) -> None:
    """Download originals from an image board into ROOT/raw/ and record every listed post in ROOT/raw.parquet.

    Each post the API lists gets one ledger row: ok (downloaded, verified against the declared md5,
    stored as raw/<ab>/<sha256>.<ext>), or rejected/failed with a reason: no_file_url,
    unsupported_ext, rating_filtered, too_small, too_large, duplicate, md5_mismatch, not_an_image,
    unsupported_type, animated, robots_disallowed, unsafe_url, bad_post_id, truncated, timeout, http_<code>.

    Running the same command again resumes: recorded posts are not listed again, known files are
    not downloaded again, and failed posts are retried. After a finished crawl it fetches only what
    was uploaded since. Feed the result to `pipe prepare ROOT/raw.parquet ROOT`.
    """
    from crawlers.config import CrawlConfig, Politeness
    from pipeline.crawl.report import print_crawl_report
    from pipeline.crawl.stage import run_crawl
    from crawlers.sites import resolve_site

    try:
        record = resolve_site(site, site_root)
        config = CrawlConfig(
            site=record,
            root=root.resolve(),
            tags=tags,
            limit=limit,
            ratings=tuple(rating.split(",")),
            min_side=min_side,
            exts=tuple(exts.split(",")),
            max_file_mb=max_file_mb,
            per_page=per_page,
            file_hosts=None if file_hosts is None else tuple(file_hosts.split(",")),
            api_format=None if api_format is None else api_format.strip().lower(),
            api_path=api_path,
            politeness=Politeness(
                request_interval=interval,
                autothrottle=autothrottle,
                autothrottle_target=autothrottle_target,
                connections_per_host=connections,
                obey_robots=robots,
                retries=retries,
                backoff_base=backoff,
                max_retry_wait=max_retry_wait,
                timeout=timeout,
                contact=contact,
            ),
            user=user,
            api_key=api_key,
            verbose=verbosity(),
            progress=progress,
        )
    except ValueError as exc:
        raise PipeError(str(exc)) from None
    if not config.tags:
        raise PipeError("--tags is empty: give the board's search, e.g. --tags \"1girl solo\"")
    report = run_crawl(config)
    print_crawl_report(report, config.root)
    if report.error:
        raise PipeError(report.error)
