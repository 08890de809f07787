"""Gelbooru 0.2's DAPI (`index.php?page=dapi&s=post&q=index&json=1`), numbered pages (`pid`, from 0).

Without `json=1` it answers XML, `<posts count offset><post id=.. file_url=.. .../></posts>`, the
DAPI's default and the only format of many 0.2 installs: `--format xml` asks for it.

Two dialects answer the same URL: Gelbooru wraps posts in `{"@attributes": {...}, "post": [...]}` and
leaves `post` out when a page is empty; Safebooru.org answers a bare array (or an empty body at the
end), names the md5 `hash`, and gives the file's `directory` and `image` name instead of a URL.
"""

from __future__ import annotations

from typing import Any

from crawlers.engines.base import ApiError, BooruSpider, Cursor, dict_records, error_message
from crawlers.posts import Post, as_int, as_text, clean_tags, extension_of, rating_from_word


class GelbooruSpider(BooruSpider):
    name = "gelbooru02"
    default_api_path = "/index.php"

    def first_cursor(self) -> Cursor:
        return 0

    def page_params(self, cursor: Cursor) -> dict[str, Any]:
        params: dict[str, Any] = {
            "page": "dapi",
            "s": "post",
            "q": "index",
            "tags": self.config.tags,
            "limit": self.per_page,
            "pid": cursor,
        }
        if not self.asks_xml:
            params["json"] = 1
        params.update(self.credentials("user_id", "api_key"))
        return params

    def read_records(self, payload: Any) -> list[dict]:
        if payload is None:  # Safebooru's empty body past the last page
            return []
        if isinstance(payload, list):
            return dict_records(payload)
        if isinstance(payload, dict):
            if "@attributes" in payload or "post" in payload:
                posts = payload.get("post", [])
                # A single post has been seen as a bare object rather than a one-element list.
                posts = [posts] if isinstance(posts, dict) else posts
                return dict_records(posts)
            raise ApiError(error_message(payload, "message", "reason"))
        raise ApiError(f"expected a JSON object or list, got {type(payload).__name__}")

    def next_cursor(self, cursor: Cursor, records: list[dict]) -> Cursor:
        return int(cursor) + 1 if records else None

    def to_post(self, record: dict) -> Post:
        file_url = as_text(record.get("file_url"))
        if not file_url and self.site.file_url_template and record.get("image") and record.get("directory") is not None:
            file_url = self.site.file_url_template.format(root=self.site.root, **record)
        return Post(
            site=self.site.name,
            post_id=int(record["id"]),
            file_url=file_url,
            md5=as_text(record.get("md5") or record.get("hash")),
            file_ext=extension_of(file_url or as_text(record.get("image"))),
            width=as_int(record.get("width")),
            height=as_int(record.get("height")),
            rating=rating_from_word(record.get("rating")),
            tags=clean_tags(record.get("tags")),
            source=as_text(record.get("source")),
        )
