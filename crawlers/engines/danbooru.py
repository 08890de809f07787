"""Danbooru's `/posts.json` (or `/posts.xml`): up to 200 posts a page, paged by cursor (`page=b<lowest id seen>`).

Cursor paging is what Danbooru's own clients use: numbered pages past 1000 answer 410, and a cursor
does not shift when new posts arrive while the crawl runs. Its XML is Rails': one child element per
field, dashed (`<image-width type="integer">`), read into the JSON's field names.
"""

from __future__ import annotations

from typing import Any

from crawlers.answers import element_records, xml_error_text
from crawlers.engines.base import ApiError, BooruSpider, Cursor, json_list_records
from crawlers.posts import clean_tags, post_id_of, rating_from_danbooru


class DanbooruSpider(BooruSpider):
    name = "danbooru"
    default_api_path = "/posts.{ext}"
    width_key, height_key, tags_key = "image_width", "image_height", "tag_string"
    rating_from = staticmethod(rating_from_danbooru)

    def first_cursor(self) -> Cursor:
        return None

    def page_params(self, cursor: Cursor) -> dict[str, Any]:
        params: dict[str, Any] = {"tags": self.config.tags, "limit": self.per_page}
        if cursor is not None:
            params["page"] = cursor
        params.update(self.credentials("login", "api_key"))
        return params

    def read_records(self, payload: Any) -> list[dict]:
        # Errors come as {"success": false, "message": ...}, usually with a 4xx status.
        return json_list_records(payload, "message", "error")

    def read_xml_records(self, root) -> list[dict]:  # noqa: ANN001 - an xml.etree Element
        # `<posts type="array">`; Rails names an empty array `<nil-classes type="array"/>`.
        if root.tag != "posts" and root.get("type") != "array":
            raise ApiError(xml_error_text(root))
        return element_records(root)

    def next_cursor(self, cursor: Cursor, records: list[dict]) -> Cursor:
        ids = [post_id_of(record.get("id")) for record in records]
        ids = [i for i in ids if i is not None]
        return f"b{min(ids)}" if ids else None

    def extra_fields(self, record: dict) -> dict[str, Any]:
        return {
            "artist": clean_tags(record.get("tag_string_artist")) or None,
            "characters": clean_tags(record.get("tag_string_character")) or None,
        }
