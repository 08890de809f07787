"""Which URLs a crawl may request: http(s) only, and only on the board's own hosts.

A board's API is data from someone else: a post whose `file_url` is `file:///etc/passwd`, `ftp://...`,
`data:...` or a host on the crawler's own network must never be fetched. A crawl therefore requests
only http and https URLs whose host and port are the board's root or one of the file hosts its site
record names (its CDN), or those the user gives with `--file-hosts`.

A host entry is `host` (the scheme's default port, 80 or 443), `host:port`, or `*.domain` (any
subdomain of `domain`, default ports).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class HostRule:
    host: str  # lowercase; for a wildcard, the domain after `*.`
    port: int | None  # None: the scheme's default port
    wildcard: bool = False

    def allows(self, host: str, port: int, scheme: str) -> bool:
        if (self.port if self.port is not None else _DEFAULT_PORTS[scheme]) != port:
            return False
        return host.endswith(f".{self.host}") if self.wildcard else host == self.host


def parse_host_rule(entry: str) -> HostRule:
    """`host`, `host:port` or `*.domain` as a rule; ValueError for anything else (a URL, a path)."""
    text = entry.strip().lower()
    wildcard = text.startswith("*.")
    bare = text[2:] if wildcard else text
    if not bare or any(c in bare for c in "/@?#* ") or "://" in text:
        raise ValueError(f"--file-hosts takes host names (host, host:port or *.domain), got {entry!r}")
    try:
        parts = urlsplit(f"//{bare}")
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValueError(f"--file-hosts entry {entry!r} has a bad port") from None
    if not host or (wildcard and port is not None):
        raise ValueError(f"--file-hosts takes host names (host, host:port or *.domain), got {entry!r}")
    return HostRule(host, port, wildcard)


def root_rule(root: str) -> HostRule:
    """The board's own host and port, from its root URL."""
    parts = urlsplit(root)
    return HostRule((parts.hostname or "").lower(), parts.port)


def unsafe_reason(url: str, rules: tuple[HostRule, ...]) -> str | None:
    """Why `url` must not be requested (for the ledger's detail), or None when it may be."""
    try:
        parts = urlsplit(url.strip())
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return f"{url} is not a valid URL"
    if scheme not in SCHEMES:
        return f"{url} is not an http(s) URL ({scheme or 'no'} scheme)"
    port = port if port is not None else _DEFAULT_PORTS[scheme]
    if not host or not any(rule.allows(host, port, scheme) for rule in rules):
        return f"{url} is not on the board's hosts ({describe(rules)}); add its host with --file-hosts to allow it"
    return None


def describe(rules: tuple[HostRule, ...]) -> str:
    names = []
    for rule in rules:
        name = f"*.{rule.host}" if rule.wildcard else rule.host
        names.append(f"{name}:{rule.port}" if rule.port is not None else name)
    return ", ".join(names)
