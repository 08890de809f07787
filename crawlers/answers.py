"""Reading one API answer: JSON or XML, chosen by the site (or `--format`), or by what came back.

XML is parsed with the standard library's expat configured safely: a document that declares a
DOCTYPE or any entity (an external entity reading a local file, a billion-laughs expansion) is
refused before anything after the declaration is read, and external entities are never resolved.
The boards' own answers never carry a DOCTYPE, so nothing genuine is lost.
"""

from __future__ import annotations

import json
from typing import Any
from xml.etree.ElementTree import Element, TreeBuilder
from xml.parsers import expat

FORMAT_JSON = "json"
FORMAT_XML = "xml"
FORMAT_AUTO = "auto"
FORMATS = (FORMAT_JSON, FORMAT_XML, FORMAT_AUTO)
# Not a format a board's API speaks: an error or challenge page, named as such in the error.
_HTML = "html"


class UnreadableAnswer(ValueError):
    """The answer is neither the JSON nor the XML asked for; the message says what it was."""


class UnsafeXml(UnreadableAnswer):
    """An XML answer declaring a DOCTYPE or entities: refused unread (XXE, entity expansion)."""


def _refuse(what: str):
    def handler(*_args: Any) -> None:
        raise UnsafeXml(f"refused an XML answer that declares {what} (entity expansion or external entities): nothing of it was read")

    return handler


def parse_xml(body: bytes) -> Element:
    """The root element of `body`; UnsafeXml for DOCTYPE/entity declarations, UnreadableAnswer if not well-formed."""
    builder = TreeBuilder()
    parser = expat.ParserCreate()
    # Never read parameter entities or external subsets; any declaration at all is refused.
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse("a DOCTYPE")
    parser.EntityDeclHandler = _refuse("an entity")
    parser.ExternalEntityRefHandler = _refuse("an external entity")
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise UnreadableAnswer(f"not well-formed XML ({exc}): {glimpse(body)}") from None
    return builder.close()


def glimpse(body: bytes) -> str:
    """The first characters of an answer, on one line, for an error message."""
    text = " ".join(body[:120].decode("utf-8", "replace").split())
    return repr(text + ("..." if len(body) > 120 else "")) if text else "an empty body"


def sniff_format(body: bytes, content_type: str) -> str | None:
    """What an answer is by its Content-Type, then by its first bytes (json, xml, html); None when neither says."""
    kind = content_type.split(";")[0].strip().lower()
    if kind.endswith(("/xml", "+xml")):
        return FORMAT_XML
    if kind.endswith(("/json", "+json")):
        return FORMAT_JSON
    if kind == "text/html" or body.lstrip()[:14].lower().startswith((b"<!doctype html", b"<html")):
        return _HTML
    first = body.lstrip()[:1]
    if first == b"<":
        return FORMAT_XML
    if first in (b"[", b"{"):
        return FORMAT_JSON
    return None


def read_answer(body: bytes, content_type: str, expected: str) -> tuple[str, Any]:
    """(format, payload): a JSON value, or an XML root Element. `expected` is json, xml or auto.

    An answer in the other format than a fixed `expected` is refused, naming what it was: a board
    that answers XML to a JSON request (old Gelbooru 0.2) needs `--format xml` or `auto`."""
    found = sniff_format(body, content_type)
    if found == _HTML:
        raise UnreadableAnswer(f"expected {_named(expected)}, got an HTML page (Content-Type {content_type or 'none'}): {glimpse(body)}")
    if expected == FORMAT_AUTO:
        kind = found or FORMAT_JSON
    else:
        kind = expected
        if found is not None and found != expected:
            raise UnreadableAnswer(
                f"expected {expected.upper()}, got {found.upper()} (Content-Type {content_type or 'none'}): {glimpse(body)}; "
                f"try --format {found} or --format auto"
            )
    if kind == FORMAT_XML:
        return kind, parse_xml(body)
    try:
        return kind, json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise UnreadableAnswer(f"not JSON ({exc}; Content-Type {content_type or 'none'}): {glimpse(body)}") from None


def _named(expected: str) -> str:
    return "JSON or XML" if expected == FORMAT_AUTO else expected.upper()


def attribute_records(root: Element, item: str = "post") -> list[dict]:
    """Posts written as attributes of `<post .../>` children (Gelbooru 0.2, Moebooru, Danbooru 1.x)."""
    return [dict(child.attrib) for child in root if child.tag == item]


def element_records(root: Element, item: str = "post") -> list[dict]:
    """Posts written as child elements (Danbooru's Rails XML): `<image-width type="integer">` -> image_width.

    `nil="true"` is None; nested elements (keeper-data) are not post fields and are left out."""
    records = []
    for child in root:
        if child.tag != item:
            continue
        record: dict[str, Any] = {}
        for field in child:
            if len(field):
                continue
            value = None if field.get("nil") == "true" else (field.text or "")
            record[field.tag.replace("-", "_")] = value
        records.append(record)
    return records


def xml_error_text(root: Element) -> str:
    """The message of an XML error answer (`<response success="false" reason=...>`, `<result><message>`)."""
    for key in ("reason", "message", "error"):
        if root.get(key):
            return root.get(key)  # type: ignore[return-value]
        found = root.find(key)
        if found is not None and (found.text or "").strip():
            return found.text.strip()
    return f"an XML <{root.tag}> element, not a list of posts"
