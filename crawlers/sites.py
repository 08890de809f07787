"""The image boards pipe knows, as data: one small record per site, grouped by API family (engine).

A site record holds what differs between instances of one engine: where it lives, how many posts a
page may hold, how long to wait between API requests, which format it answers (JSON or XML) and at
which path, and how to build a file URL when the API does not give one. `--root URL` points any
record (or a bare engine) at another instance; `--format` and `--api-path` override the record's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

ENGINE_DANBOORU = "danbooru"
ENGINE_GELBOORU = "gelbooru02"
ENGINE_MOEBOORU = "moebooru"
# Danbooru 1.x (behoimi and other old installs): Moebooru's ancestor, `/post/index.json`, numbered pages.
ENGINE_DANBOORU1 = "danbooru1"
ENGINES = (ENGINE_DANBOORU, ENGINE_GELBOORU, ENGINE_MOEBOORU, ENGINE_DANBOORU1)

# Which text fields each API family stores HTML-escaped, per answer format: exactly these are
# unescaped, nothing else (a Danbooru tag `&notes` stays `&notes`). Gelbooru 0.2 keeps tags and
# source escaped in its database and its JSON repeats them as stored (`&#039;`, `&amp;`); its XML
# writer's one level of escaping is the XML's own, which the XML parser undoes. Danbooru, Moebooru
# and Danbooru 1.x store tags and sources as typed.
ESCAPED_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    ENGINE_GELBOORU: {"json": ("tags", "source"), "xml": ()},
    ENGINE_DANBOORU: {"json": (), "xml": ()},
    ENGINE_MOEBOORU: {"json": (), "xml": ()},
    ENGINE_DANBOORU1: {"json": (), "xml": ()},
}


@dataclass(frozen=True)
class SiteRecord:
    name: str
    engine: str
    root: str
    # The most posts one API page may hold (the API's own maximum).
    per_page: int
    # Minimum seconds between two API requests to this site.
    request_interval: float = 1.0
    # For APIs that give a file name but no URL (Safebooru): a template over the post's fields.
    file_url_template: str | None = None
    # Hosts besides the root's that serve the board's files (its CDN): file URLs anywhere else are
    # never requested. An entry is `host`, `host:port` or `*.domain` (see `crawlers.urls`).
    file_hosts: tuple[str, ...] = ()
    # What the board answers: json, xml, or auto (by the answer's Content-Type and first bytes).
    api_format: str = "json"
    # The API's path when it is not the engine's usual one (`{ext}` becomes json or xml).
    api_path: str | None = None

    def with_root(self, root: str) -> SiteRecord:
        """The record pointed at another instance: its files come from its own host, not the built-in CDN."""
        return replace(self, root=root.rstrip("/"), file_hosts=())


SITES: dict[str, SiteRecord] = {
    # Danbooru: `limit` up to 200; its own clients keep 0.5-1.5 s between requests.
    "danbooru": SiteRecord("danbooru", ENGINE_DANBOORU, "https://danbooru.donmai.us", per_page=200, file_hosts=("cdn.donmai.us",)),
    # Safebooru.org runs Gelbooru 0.2 and answers a bare JSON array without file URLs.
    "safebooru": SiteRecord(
        "safebooru",
        ENGINE_GELBOORU,
        "https://safebooru.org",
        per_page=1000,
        file_url_template="{root}/images/{directory}/{image}",
    ),
    # Gelbooru's API gives file URLs on numbered image hosts (img3.gelbooru.com/images/...).
    "gelbooru": SiteRecord(
        "gelbooru", ENGINE_GELBOORU, "https://gelbooru.com", per_page=100,
        file_hosts=("img1.gelbooru.com", "img2.gelbooru.com", "img3.gelbooru.com", "img4.gelbooru.com"),
    ),
    "yandere": SiteRecord("yandere", ENGINE_MOEBOORU, "https://yande.re", per_page=100, file_hosts=("files.yande.re",)),
    "konachan": SiteRecord("konachan", ENGINE_MOEBOORU, "https://konachan.com", per_page=100),
}

# A bare engine name needs --root: it is "some other instance of this API family".
_BARE_ENGINES: dict[str, SiteRecord] = {
    ENGINE_GELBOORU: SiteRecord(ENGINE_GELBOORU, ENGINE_GELBOORU, "", per_page=100),
    ENGINE_MOEBOORU: SiteRecord(ENGINE_MOEBOORU, ENGINE_MOEBOORU, "", per_page=100),
    # Danbooru 1.x capped `limit` at 100 (some installs at 1000).
    ENGINE_DANBOORU1: SiteRecord(ENGINE_DANBOORU1, ENGINE_DANBOORU1, "", per_page=100),
}


def resolve_site(name: str, root: str | None = None) -> SiteRecord:
    """The record for `name` (a site, or an engine when `root` is given), pointed at `root` if given."""
    record = SITES.get(name) or _BARE_ENGINES.get(name)
    if record is None:
        known = ", ".join([*SITES, *_BARE_ENGINES])
        raise ValueError(f"unknown site {name!r}; known sites and engines: {known}")
    if root:
        if not root.startswith(("http://", "https://")):
            raise ValueError(f"--root must be an http(s) URL, got {root!r}")
        return record.with_root(root)
    if not record.root:
        raise ValueError(f"{name} is an API family, not a site: give the instance with --root URL")
    return record
