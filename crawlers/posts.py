"""One post as pipe records it, whatever the API family it came from.

Each engine turns its API's records into `Post`s (see `engines/`); everything after that (filters,
downloads, the ledger) only sees this shape.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from urllib.parse import urlparse

# Ratings are recorded with Danbooru's current letters. Older boards' "safe" (Moebooru's and
# Safebooru's `s`, Gelbooru's former "safe") means what Danbooru now calls general.
RATINGS = ("g", "s", "q", "e")
_RATING_WORDS = {
    "general": "g",
    "safe": "g",
    "sensitive": "s",
    "questionable": "q",
    "explicit": "e",
    # Gelbooru 0.2's old letters, which mean the old words (s is "safe", Danbooru's g).
    "s": "g",
    "q": "q",
    "e": "e",
}
# Ledger integers are 64-bit: a value outside that range (a board's bug or a hostile API) is not a number.
INT64_MAX = 2**63 - 1
_DIGITS = re.compile(r"\d{1,19}")


@dataclass(frozen=True)
class Post:
    site: str
    post_id: int
    file_url: str | None
    md5: str | None
    file_ext: str | None
    width: int | None
    height: int | None
    rating: str | None
    tags: str
    artist: str | None = None
    characters: str | None = None
    source: str | None = None
    file_size: int | None = None
    # For a record whose id is unusable (post_id None): the id as the API gave it, for the ledger.
    bad_id: str | None = None

    @property
    def ledger_id(self) -> str:
        return f"{self.site}:{self.post_id if self.post_id is not None else self.bad_id}"


def rating_from_word(word: str | None) -> str | None:
    """Gelbooru's words (general/sensitive/questionable/explicit, formerly safe) as letters; its
    answers before 2018 (and many 0.2 installs still) give the old letters s/q/e, s being "safe"."""
    if not word:
        return None
    return _RATING_WORDS.get(word.strip().lower())


def rating_from_moebooru(letter: str | None) -> str | None:
    """Moebooru's s/q/e: its s is "safe", which is Danbooru's g."""
    return {"s": "g", "q": "q", "e": "e"}.get((letter or "").strip().lower())


def rating_from_danbooru(letter: str | None) -> str | None:
    letter = (letter or "").strip().lower()
    return letter if letter in RATINGS else None


def clean_tags(raw: str | None) -> str:
    """Space-separated tags, single spaces. Entities are decoded only where a board escapes them
    (`sites.ESCAPED_FIELDS`, before this): a Danbooru tag `&notes` is `&notes`."""
    return " ".join((raw or "").split())


def extension_of(url_or_name: str | None) -> str | None:
    """`jpg` for `.../abc.JPG?x=1`; None without one. `jpeg` is folded into `jpg`."""
    if not url_or_name:
        return None
    ext = posixpath.splitext(urlparse(url_or_name).path)[1].lstrip(".").lower()
    return normalize_ext(ext) if ext else None


def normalize_ext(ext: str) -> str:
    ext = ext.strip().lstrip(".").lower()
    return "jpg" if ext == "jpeg" else ext


def as_int(value: object) -> int | None:
    """An integer field (width, size), or None when absent, not a number, or outside 64 bits."""
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if -INT64_MAX - 1 <= number <= INT64_MAX else None


def post_id_of(value: object) -> int | None:
    """A post id: a whole number in 1..2^63-1 given as a JSON integer or a string of digits; else None.

    Stricter than `as_int`: `1.5`, `true` or `"12abc"` are not ids, and an id the ledger cannot hold
    must not be truncated into another post's."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = int(value) if value.is_integer() else None
    elif isinstance(value, str):
        value = int(value.strip()) if _DIGITS.fullmatch(value.strip()) else None
    if not isinstance(value, int):
        return None
    return value if 1 <= value <= INT64_MAX else None


def as_text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
