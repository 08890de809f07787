"""Scrapy crawlers for image boards (Danbooru, Gelbooru 0.2, Moebooru): `pipe crawl`.

Not built yet; the crawl ledger they will write (`raw.parquet`) is already defined in
`manifests.schema.RAW`, and `pipe prepare` reads it.
"""
