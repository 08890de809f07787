"""Moebooru's `/post.json` (yande.re, Konachan): numbered pages from 1, up to 100 posts a page."""

from __future__ import annotations

from typing import Any

from crawlers.engines.base import ApiError, BooruSpider, Cursor
from crawlers.posts import Post, as_int, as_text, clean_tags, extension_of, normalize_ext, rating_from_moebooru


class MoebooruSpider(BooruSpider):
    name = "moebooru"
    api_path = "/post.json"

    def first_cursor(self) -> Cursor:
        return 1

    def page_params(self, cursor: Cursor) -> dict[str, Any]:
        params: dict[str, Any] = {"tags": self.config.tags, "limit": self.per_page, "page": cursor}
        if self.config.user and self.config.api_key:
            params.update(login=self.config.user, password_hash=self.config.api_key)
        return params

    def read_records(self, payload: Any) -> list[dict]:
        if isinstance(payload, dict):
            raise ApiError(str(payload.get("reason") or payload.get("message") or payload))
        if not isinstance(payload, list):
            raise ApiError(f"expected a JSON list of posts, got {type(payload).__name__}")
        return [record for record in payload if isinstance(record, dict)]

    def next_cursor(self, cursor: Cursor, records: list[dict]) -> Cursor:
        return int(cursor) + 1 if records else None

    def to_post(self, record: dict) -> Post:
        file_url = as_text(record.get("file_url"))
        ext = as_text(record.get("file_ext"))
        return Post(
            site=self.site.name,
            post_id=int(record["id"]),
            file_url=file_url,
            md5=as_text(record.get("md5")),
            file_ext=normalize_ext(ext) if ext else extension_of(file_url),
            width=as_int(record.get("width")),
            height=as_int(record.get("height")),
            rating=rating_from_moebooru(record.get("rating")),
            tags=clean_tags(record.get("tags")),
            source=as_text(record.get("source")),
            file_size=as_int(record.get("file_size")),
        )
