"""`pipe crawl`: the stage shell around the Scrapy crawlers (a child process per crawl)."""
