"""Error signatures: error lines with their variable parts replaced by placeholders.

Two reports of the same fault rarely share a line byte for byte: the port, the
host, the user, the path, the pid and the quoted table name differ. Replacing
those with placeholders (``<n>``, ``<host>``, ``<path>``, ``<str>``...) leaves
what the program printed for every occurrence, which is what a known error's
signature is. Matching is exact first (same normalised line) and partial
otherwise (shared word pairs), because reporters paste fragments.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
from collections.abc import Iterable, Sequence

MAX_LINES = 20
MAX_LINE_LENGTH = 300

# Order matters: the specific shapes go before the general ones (a UUID is also
# hex and numbers, a URL contains a host and a path). Each rule comes with what a
# line must contain for it to match at all: most lines lack most of these, and a
# search for one character is cheaper than trying the pattern at every position.
# fmt: off
_DIGIT = re.compile(r"\d")
_RULES: tuple[tuple[re.Pattern[str], str, re.Pattern[str]], ...] = (
    (re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I), "<url>", re.compile("://")),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
     "<uuid>", re.compile("-")),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b|\bx\.x\.x\.x\b"), "<ip>",
     re.compile(r"\.")),
    (re.compile(r"(?<![\w:])(?=[0-9a-f:]*\d)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{1,4}(?![\w:])", re.I),
     "<ip>", re.compile(":")),
    (re.compile(r"\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.I),
     "<hex>", _DIGIT),
    (re.compile(r"(?:[a-z]:)?(?:[\\/][\w.@<>~-]+){2,}[\\/]?", re.I), "<path>",
     re.compile(r"[\\/]")),
    (re.compile(r"\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|dev|local|internal|lan"
                r"|cloud|svc|cluster)\b(?::\d+)?", re.I), "<host>", re.compile(r"\.")),
    # Quoted values (names, users, tables); a quoted sentence is the message itself.
    (re.compile(r"'[^'\s]{1,80}'|\"[^\"\s]{1,80}\"|`[^`\s]{1,80}`"), "<str>",
     re.compile("['\"`]")),
    (re.compile(r"\b\d+(?:\.\d+)*\b"), "<n>", _DIGIT),
)
# fmt: on
# A quoted message ends at a quote followed by a space, punctuation or the end, so
# that the quoted values inside it ('send') stay in it.
_QUOTED = re.compile(
    r"(?:^|(?<=[\s(:]))'((?:[^'\n]|(?<=[\s(])'[^'\s]{1,80}')+?)'(?=[\s.,;:)]|$)|`([^`\n]+)`"
)
_QUOTED_LENGTH = range(12, 301)
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"<\w+>|[a-z][a-z0-9_]*")

# Lines worth a signature: what programs print when they fail.
_ERRORISH = re.compile(
    r"error|exception|fatal|fail|denied|refused|timed? ?out|traceback|panic|"
    r"unable|cannot|can't|could not|not found|no such|invalid|unrecognized|"
    r"not allowed|not supported|too many|too large|warning|critical|\[emerg\]|\[crit\]",
    re.I,
)


def normalise(line: str) -> str:
    """One error line with variable parts as placeholders, lower case, single spaces."""
    text = line.strip()[:MAX_LINE_LENGTH]
    for pattern, placeholder, needed in _RULES:
        if needed.search(text):
            text = pattern.sub(placeholder, text)
    return _SPACE.sub(" ", text).strip().lower()


def error_lines(text: str) -> list[str]:
    """The lines of a report or article that look like program output about a failure.

    Prose quotes the message it is about ("fails with 'FATAL: role ... does not
    exist'"): the quoted part is the line, the prose around it is not.
    """
    found = []
    for raw in text.splitlines():
        line = raw.strip(" \t>*-`")
        if len(line) < 12 or not _ERRORISH.search(line):
            continue
        quoted = [
            q
            for m in _QUOTED.finditer(line)
            if len(q := m.group(1) or m.group(2)) in _QUOTED_LENGTH and _ERRORISH.search(q)
        ]
        found.extend(quoted or [line])
        if len(found) >= MAX_LINES:
            break
    return found[:MAX_LINES]


def signatures_of(texts: Iterable[str], *, error_text: str = "") -> list[str]:
    """Normalised error lines of several texts, first occurrence first, without repeats.

    Every line of ``error_text`` counts (the reporter put it in the error field),
    even one without a word like "error" in it; the other texts give their
    error-looking lines only.
    """
    seen: dict[str, None] = {}
    explicit = [line.strip() for line in error_text.splitlines() if line.strip()][:MAX_LINES]
    for line in itertools.chain(explicit, *(error_lines(text) for text in texts)):
        signature = normalise(line)
        if len(_words(signature)) >= 3:
            seen.setdefault(signature, None)
    return list(seen)


def _words(signature: str) -> list[str]:
    return _WORD.findall(signature)


@functools.lru_cache(maxsize=8192)
def _pairs(signature: str) -> frozenset[tuple[str, str]]:
    """Kept: a draft's lines meet every candidate's, and candidates' lines come back."""
    return frozenset(itertools.pairwise(_words(signature)))


@dataclasses.dataclass(frozen=True, slots=True)
class Match:
    value: float  # 1.0 for the same normalised line, or one containing all the other's
    line: str | None  # the best-matching line of ``theirs``
    exact: bool


def similarity(ours: Sequence[str], theirs: Sequence[str]) -> Match:
    """How well two sets of signatures match, and the best-matching line of ``theirs``.

    Partial matches count the word pairs of the shorter line found in the longer
    one: a pasted fragment of a known error line still matches it, and word
    pairs (not single words) keep "connection refused" apart from "refused
    connection to the pool".
    """
    best, best_line = 0.0, None
    if not ours or not theirs:
        return Match(best, best_line, exact=False)
    exact = set(ours) & set(theirs)
    if exact:
        return Match(1.0, next(s for s in theirs if s in exact), exact=True)
    their_pairs = [(line, _pairs(line)) for line in theirs]
    for line in ours:
        pairs = _pairs(line)
        if not pairs:
            continue
        for other, other_pairs in their_pairs:
            if not other_pairs:
                continue
            shared = len(pairs & other_pairs)
            value = shared / min(len(pairs), len(other_pairs))
            # A two-pair overlap between long lines is chance, not a match.
            value *= min(1.0, shared / 3)
            if value > best:
                best, best_line = value, other
    return Match(best, best_line, exact=False)


def primary(texts: Iterable[str], *, error_text: str = "") -> str | None:
    """The signature an incident is filed under (its first error line), for finding
    duplicates with an indexed equality test."""
    found = signatures_of(texts, error_text=error_text)
    return found[0][:500] if found else None
