"""The URL policy and id checks on their own: which file URLs a crawl may request, which ids are ids."""

from __future__ import annotations

import pytest

from crawlers.posts import post_id_of
from crawlers.urls import parse_host_rule, root_rule, unsafe_reason

RULES = (root_rule("https://danbooru.donmai.us"), parse_host_rule("cdn.donmai.us"), parse_host_rule("*.gelbooru.com"), parse_host_rule("127.0.0.1:8080"))


@pytest.mark.parametrize("url", ["https://danbooru.donmai.us/data/a.jpg", "http://cdn.donmai.us/a.png", "https://img3.gelbooru.com/images/a.jpg", "http://127.0.0.1:8080/a.jpg"])
def test_the_boards_hosts_are_allowed(url):
    assert unsafe_reason(url, RULES) is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("file:///etc/passwd", "not an http(s) URL (file scheme)"),
        ("ftp://cdn.donmai.us/a.png", "(ftp scheme)"),
        ("data:image/png;base64,AAAA", "(data scheme)"),
        ("https://cdn.donmai.us:8443/a.png", "not on the board's hosts"),  # another port
        ("http://127.0.0.1:8081/a.jpg", "not on the board's hosts"),
        ("https://gelbooru.com.evil.example/a.jpg", "not on the board's hosts"),
        ("https://evilgelbooru.com/a.jpg", "not on the board's hosts"),
        ("https://cdn.donmai.us:99999/a.png", "not a valid URL"),
        ("//cdn.donmai.us/a.png", "(no scheme)"),
    ],
)
def test_everything_else_is_unsafe_with_the_url_in_the_reason(url, words):
    reason = unsafe_reason(url, RULES)
    assert reason is not None and reason.startswith(url) and words in reason


@pytest.mark.parametrize("entry", ["http://cdn.example", "cdn.example/path", "*.", "", "a b", "*.x.com:81"])
def test_a_host_entry_that_is_not_a_host_is_refused(entry):
    with pytest.raises(ValueError, match="--file-hosts"):
        parse_host_rule(entry)


@pytest.mark.parametrize(("value", "expected"), [(963, 963), ("963", 963), (963.0, 963), (2**63 - 1, 2**63 - 1)])
def test_post_ids_that_are_ids(value, expected):
    assert post_id_of(value) == expected


@pytest.mark.parametrize("value", [10**30, 2**63, 0, -3, 1.5, True, None, "12abc", "", "9" * 20, [1], {"id": 1}])
def test_post_ids_that_are_not(value):
    assert post_id_of(value) is None
