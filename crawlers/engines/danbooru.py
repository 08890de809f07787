"""Danbooru's `/posts.json`: up to 200 posts a page, paged by cursor (`page=b<lowest id seen>`).

Cursor paging is what Danbooru's own clients use: numbered pages past 1000 answer 410, and a cursor
does not shift when new posts arrive while the crawl runs.
"""

from __future__ import annotations

from typing import Any

from crawlers.engines.base import ApiError, BooruSpider, Cursor
from crawlers.posts import Post, as_int, as_text, clean_tags, extension_of, normalize_ext, rating_from_danbooru


class DanbooruSpider(BooruSpider):
    name = "danbooru"
    api_path = "/posts.json"

    def first_cursor(self) -> Cursor:
        return None

    def page_params(self, cursor: Cursor) -> dict[str, Any]:
        params: dict[str, Any] = {"tags": self.config.tags, "limit": self.per_page}
        if cursor is not None:
            params["page"] = cursor
        if self.config.user and self.config.api_key:
            params.update(login=self.config.user, api_key=self.config.api_key)
        return params

    def read_records(self, payload: Any) -> list[dict]:
        if isinstance(payload, dict):
            # Errors come as {"success": false, "message": ...}, usually with a 4xx status.
            raise ApiError(str(payload.get("message") or payload.get("error") or payload))
        if not isinstance(payload, list):
            raise ApiError(f"expected a JSON list of posts, got {type(payload).__name__}")
        return [record for record in payload if isinstance(record, dict)]

    def next_cursor(self, cursor: Cursor, records: list[dict]) -> Cursor:
        ids = [as_int(record.get("id")) for record in records]
        ids = [i for i in ids if i is not None]
        return f"b{min(ids)}" if ids else None

    def to_post(self, record: dict) -> Post:
        file_url = as_text(record.get("file_url"))
        ext = as_text(record.get("file_ext"))
        return Post(
            site=self.site.name,
            post_id=int(record["id"]),
            # Posts the user may not see (banned, gold-only) come without file_url and md5.
            file_url=file_url,
            md5=as_text(record.get("md5")),
            file_ext=normalize_ext(ext) if ext else extension_of(file_url),
            width=as_int(record.get("image_width")),
            height=as_int(record.get("image_height")),
            rating=rating_from_danbooru(record.get("rating")),
            tags=clean_tags(record.get("tag_string")),
            artist=clean_tags(record.get("tag_string_artist")) or None,
            characters=clean_tags(record.get("tag_string_character")) or None,
            source=as_text(record.get("source")),
            file_size=as_int(record.get("file_size")),
        )
