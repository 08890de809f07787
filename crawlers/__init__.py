"""Scrapy crawlers for image boards (Danbooru, Gelbooru 0.2, Moebooru): `pipe crawl`.

- `sites`: the built-in boards as data (root URL, engine, page size, request interval, file URL rule).
- `posts`: one normalized `Post` per API record, whatever the API family.
- `engines/`: one Scrapy spider per API family; each only knows how to ask for a page and read it.
- `filters`, `verify`: pure decisions on a post (before download) and on downloaded bytes (after).
- `pipelines`, `middlewares`, `settings`: the Scrapy project that downloads, verifies and records.
- `state`: what a previous run already recorded, so a restarted crawl continues without repeats.
- `run`: runs one crawl in a child process (Scrapy's reactor cannot restart inside one process).
- `fixture_site`: a local HTTP server speaking all three APIs, for tests, the demo and the benchmark.
"""
