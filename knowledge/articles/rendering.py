"""Markdown to safe HTML for article bodies.

Two layers, because article text comes from imports and many authors: markdown-it
renders with raw HTML disabled (so ``<script>`` arrives as text) and refuses
``javascript:``/``data:`` links; nh3 (the Rust ammonia sanitiser) then keeps only
an allow-list of tags and attributes, strips event handlers and styles, and adds
``rel="noopener noreferrer nofollow"`` to links.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "img", "li", "ol", "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "th": {"align"},
    "td": {"align"},
}
SAFE_SCHEMES = {"http", "https", "mailto"}
_LANGUAGE_CLASS = re.compile(r"^language-[A-Za-z0-9_+-]{1,30}$")

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
    ["table", "strikethrough"]
)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if tag == "code" and attribute == "class":
        return value if _LANGUAGE_CLASS.fullmatch(value) else None
    return value


def render_markdown(text: str) -> str:
    """Sanitised HTML for ``text``; safe to insert into a page as it is."""
    return nh3.clean(
        _markdown.render(text),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=SAFE_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_attribute_filter,
        strip_comments=True,
    )


SECTION = re.compile(r"^#{1,3}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def sections(text: str) -> dict[str, str]:
    """Markdown split by its headings, keyed by the lower-cased heading text.

    Text before the first heading is keyed ``""``. The search index uses this
    to weigh symptoms, cause and resolution as separate fields.
    """
    matches = list(SECTION.finditer(text))
    if not matches:
        return {"": text}
    result = {"": text[: matches[0].start()]}
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(text)
        key = match.group(1).strip().lower()
        result[key] = (result.get(key, "") + "\n" + text[match.end() : end]).strip()
    return result
