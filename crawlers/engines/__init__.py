"""One Scrapy spider per API family; `spider_for(engine)` picks it."""

from __future__ import annotations

from crawlers.engines.base import ApiError, BooruSpider
from crawlers.engines.danbooru import DanbooruSpider
from crawlers.engines.gelbooru import GelbooruSpider
from crawlers.engines.moebooru import Danbooru1Spider, MoebooruSpider
from crawlers.sites import ENGINE_DANBOORU, ENGINE_DANBOORU1, ENGINE_GELBOORU, ENGINE_MOEBOORU

SPIDERS: dict[str, type[BooruSpider]] = {
    ENGINE_DANBOORU: DanbooruSpider,
    ENGINE_GELBOORU: GelbooruSpider,
    ENGINE_MOEBOORU: MoebooruSpider,
    ENGINE_DANBOORU1: Danbooru1Spider,
}


def spider_for(engine: str) -> type[BooruSpider]:
    return SPIDERS[engine]


__all__ = ["ApiError", "BooruSpider", "SPIDERS", "spider_for"]
