"""Text analysis for error messages as well as prose.

Error text is full of compound identifiers: ``ER_NOT_SUPPORTED_AUTH_MODE``,
``PublicKeyRetrieval``, ``psycopg2.OperationalError``, ``pg_hba.conf``. A
reporter writes "ER NOT SUPPORTED AUTH MODE" or "public key retrieval"; an
article quotes the identifier (or the other way round). Whoosh's stemming
analyzer keeps each identifier as one token, so the two never meet. The
compound filter keeps the whole identifier (an exact match still counts most,
as it matches both ways) and adds its parts at the same position, so phrases
and highlights still line up.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from whoosh.analysis import (
    Filter,
    LowercaseFilter,
    RegexTokenizer,
    StemFilter,
    StopFilter,
)
from whoosh.analysis.tokenizers import default_pattern
from whoosh.lang.porter import stem

# Split points: underscores and dots, then lower→Upper ("publicKey") and
# UPPER→Upper-lower ("HTTPServer") case changes, and changes of script; digits
# stay with their letters ("utf8mb4", "x509" are names, not two words).
_DELIMITERS = re.compile(r"[._]+")
_CAMEL = re.compile(
    r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])"
    # Where Latin letters or digits meet CJK or Hangul ("设置redis", "72로"): \w runs
    # straight across scripts, and the Latin part is the one an index can match.
    r"|(?<=[A-Za-z0-9])(?=[\u3040-\u9fff\uac00-\ud7af])|(?<=[\u3040-\u9fff\uac00-\ud7af])(?=[A-Za-z0-9])"
)


def compound_parts(word: str) -> list[str]:
    """The parts of an identifier, or ``[]`` when it is a plain word."""
    parts = [p for chunk in _DELIMITERS.split(word) for p in _CAMEL.split(chunk) if p]
    return parts if parts != [word] else []


class CompoundFilter(Filter):  # type: ignore[misc]
    """Yield each token, then its identifier parts at the same position."""

    def __call__(self, tokens: Iterator[Any]) -> Iterator[Any]:
        for token in tokens:
            text = token.text
            parts = compound_parts(text)
            yield token
            if not parts:
                continue
            start = token.startchar if token.chars else 0
            offset = 0
            for part in parts:
                offset = text.find(part, offset)
                token.text = part
                if token.chars:
                    token.startchar = start + offset
                    token.endchar = start + offset + len(part)
                offset += len(part)
                yield token


def analyzer() -> Any:
    """Stemming analyzer for every text field, with identifiers split into words."""
    return RegexTokenizer() | CompoundFilter() | LowercaseFilter() | StopFilter() | StemFilter()


_STOP_WORDS = StopFilter().stops
_MIN_SIZE = StopFilter().min
_kept_stem = functools.lru_cache(maxsize=100_000)(stem)


def _stem(word: str) -> str:
    return str(_kept_stem(word) if len(word) <= 64 else stem(word))


def spans(text: str) -> Iterator[tuple[str, int, int, bool]]:
    """What ``analyzer()(text, chars=True, removestops=False)`` yields, as (term,
    start, end, stopped), without Whoosh's chain of generators (five Python steps a
    token; a test holds the two equal). Suggestions analyse every past incident and
    article they show, and this was most of what was left of their time."""
    for match in default_pattern.finditer(text):
        word, start = match.group(0), match.start()
        yield _term(word, start, match.end())
        offset = 0
        for part in compound_parts(word):
            offset = word.find(part, offset)
            yield _term(part, start + offset, start + offset + len(part))
            offset += len(part)


def terms(text: str) -> Iterator[str]:
    """What ``analyzer()(text)`` yields as token texts: the indexed terms."""
    return (term for term, _, _, stopped in spans(text) if not stopped)


def _term(word: str, start: int, end: int) -> tuple[str, int, int, bool]:
    lower = word.lower()
    if len(lower) < _MIN_SIZE or lower in _STOP_WORDS:
        return lower, start, end, True
    return _stem(lower), start, end, False
