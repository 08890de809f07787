"""Scrapy crawlers for image boards (Danbooru, Gelbooru 0.2, Moebooru): `pipe crawl`.

- `sites`: the built-in boards as data (root URL, engine, page size, request interval, file URL rule).
- `posts`: one normalized `Post` per API record, whatever the API family.
- `engines/`: one Scrapy spider per API family; each only knows how to ask for a page and read it.
- `filters`, `verify`: pure decisions on a post (before download) and on downloaded bytes (after).
- `pipelines`, `middlewares`, `settings`: the Scrapy project that downloads, verifies and records.
- `state`: what a previous run already recorded, so a restarted crawl continues without repeats.

The stage shell that runs one crawl in a child process (Scrapy's reactor cannot restart inside one
process) is `pipeline.crawl`; the local fixture board the tests and the demo crawl is
`pipeline.demo.fixture_site`. The reason codes are `manifests.reasons`.
"""
