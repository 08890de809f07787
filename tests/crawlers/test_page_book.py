"""The crawl's resume point: the first listed page with a post not yet in the ledger, the same as the
plain scan over every page gives, after any order of listings and flushes."""

from __future__ import annotations

import random

from crawlers.state import PageBook


def plain_resume_point(pages: list[tuple[object, set[str]]], settled: set[str], after_last, exhausted):
    for cursor, posts in pages:
        if posts - settled:
            return cursor, False
    return after_last, exhausted


def test_resume_point_matches_the_plain_scan_after_random_listings_and_flushes():
    rng = random.Random(7)
    book, pages, settled, listed = PageBook(), [], set(), []
    after_last, exhausted = None, False
    for page in range(300):
        # Boards shift while a crawl lists them: some posts show up on two pages.
        posts = [f"p{page * 10 + i}" for i in range(10)] + ([rng.choice(listed)] if listed and rng.random() < 0.3 else [])
        listed.extend(posts)
        after_last = None if page == 299 else page + 1
        exhausted = after_last is None
        book.listed(page, posts, after_last)
        pages.append((page, set(posts)))
        for post in rng.sample(listed, min(len(listed), rng.randint(0, 12))):
            book.settled(post)
            settled.add(post)
        assert book.resume_cursor() == plain_resume_point(pages, settled, after_last, exhausted)
    for post in listed:
        book.settled(post)
        settled.add(post)
    assert book.resume_cursor() == (None, True) == plain_resume_point(pages, settled, after_last, exhausted)


def test_settling_touches_only_the_pages_of_the_post():
    book = PageBook()
    for page in range(1000):
        book.listed(page, [f"p{page}"], page + 1)
    book.settled("p0")
    assert book.resume_cursor() == (1, False)
    assert book.pages[1].outstanding == {"p1"}
    book.settled("unknown")  # a post this run never listed: nothing changes
    assert book.resume_cursor() == (1, False)
