"""Turning what people type into safe Whoosh queries.

The syntax we accept: words, "quoted phrases", AND/OR/NOT, +required and
-excluded words, parentheses, and word~ for a fuzzy match. Wildcards, ranges,
boosts and field prefixes are not offered (they are slow or surprising). Input
that does not parse cleanly (unbalanced quotes or parentheses, a lone ``*``,
``field:``) is searched as plain words instead of failing.
"""

from __future__ import annotations

import re

from whoosh import query as q
from whoosh.fields import Schema
from whoosh.qparser import (
    FieldsPlugin,
    FuzzyTermPlugin,
    GroupPlugin,
    MultifieldParser,
    OperatorsPlugin,
    OrGroup,
    PhrasePlugin,
    PlusMinusPlugin,
)
from whoosh.qparser.plugins import BoostPlugin, RangePlugin, WildcardPlugin

from knowledge.search.schema import TEXT_FIELDS

MAX_QUERY_LENGTH = 1000
WORD = re.compile(r"\w+", re.UNICODE)
OPERATORS = frozenset({"AND", "OR", "NOT"})
# One missing word does not hide a hit; BM25 already ranks documents with more of the
# words higher. Whoosh's coordination bonus (OrGroup.factory) cost 30-45% of search time
# in bench/search.py and changed nothing in knownfix eval (full MRR 0.988 either way;
# title-only 0.833 with it, 0.835 without), so it is not used.
GROUP = OrGroup


def _parser(schema: Schema, *, syntax: bool) -> MultifieldParser:
    parser = MultifieldParser(list(TEXT_FIELDS), schema, group=GROUP)
    for plugin in (FieldsPlugin, WildcardPlugin, RangePlugin, BoostPlugin):
        parser.remove_plugin_class(plugin)
    if syntax:
        parser.add_plugin(FuzzyTermPlugin())
    else:
        for plugin in (OperatorsPlugin, PhrasePlugin, PlusMinusPlugin, GroupPlugin):
            parser.remove_plugin_class(plugin)
    return parser


def _balanced(text: str) -> bool:
    if text.count('"') % 2:
        return False
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _has_error(node: q.Query) -> bool:
    if getattr(node, "error", None) is not None or isinstance(node, q.NullQuery.__class__):
        return True
    return any(_has_error(child) for child in node.children())


def plain_words(text: str) -> list[str]:
    return WORD.findall(text)


def parse(schema: Schema, text: str) -> tuple[q.Query, bool]:
    """The query for ``text`` and whether it was read as plain words.

    Empty input (or input with no words) matches everything, so filters and
    facets still work as a browser.
    """
    text = text.strip()[:MAX_QUERY_LENGTH]
    if not plain_words(text):
        return q.Every(), bool(text)
    if _balanced(text):
        parsed = _parser(schema, syntax=True).parse(text)
        if not _has_error(parsed) and parsed is not q.NullQuery:
            return parsed, False
    words = " ".join(plain_words(text))
    return _parser(schema, syntax=False).parse(words), True
