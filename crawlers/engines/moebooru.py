"""Moebooru's `/post.json` or `/post.xml` (yande.re, Konachan): numbered pages from 1, up to 100 posts a page.

Danbooru 1.x, Moebooru's ancestor, pages the same way (`tags`, `limit`, `page` from 1) and lists
the same record shape at `/post/index.json` (`.xml`): it is this spider at another path.
"""

from __future__ import annotations

from typing import Any

from crawlers.engines.base import BooruSpider, Cursor, json_list_records
from crawlers.posts import rating_from_moebooru


class MoebooruSpider(BooruSpider):
    name = "moebooru"
    default_api_path = "/post.{ext}"
    rating_from = staticmethod(rating_from_moebooru)  # width, height and tags under the default keys

    def first_cursor(self) -> Cursor:
        return 1

    def page_params(self, cursor: Cursor) -> dict[str, Any]:
        params: dict[str, Any] = {"tags": self.config.tags, "limit": self.per_page, "page": cursor}
        params.update(self.credentials("login", "password_hash"))
        return params

    def read_records(self, payload: Any) -> list[dict]:
        return json_list_records(payload, "reason", "message")

    def next_cursor(self, cursor: Cursor, records: list[dict]) -> Cursor:
        return int(cursor) + 1 if records else None


class Danbooru1Spider(MoebooruSpider):
    name = "danbooru1"
    default_api_path = "/post/index.{ext}"
