"""BM25F as Whoosh scores it, with the average field length held steady between writes.

BM25 divides each document's field length by the index's average, and every write
moves that average a little. The array scorer (``arrays.py``) keeps each term's
term-frequency part, which depends on the average, so each write made the next
suggestion compute every one again: about 10 ms of it at 200,000 documents, each
time. Rounded to ``AVERAGE_BITS`` significant bits (within 0.4% of the exact average),
the average changes once in hundreds of writes rather than at every one; a score
moves by less than that rounding, far less than what tells documents apart.

Whoosh's own searches use the same model (``SearchIndex`` gives it to every searcher),
so the array scorer still equals Whoosh's scoring to the last bit, and tests hold it.
"""

from __future__ import annotations

import math
from typing import Any

from whoosh import scoring

AVERAGE_BITS = 8


def average_length(searcher: Any, field: str) -> float:
    """The whole index's average length of ``field``, rounded to ``AVERAGE_BITS``
    significant bits (1 for a field no document has, as Whoosh takes it)."""
    average = searcher.get_parent().avg_field_length(field) or 1
    mantissa, exponent = math.frexp(average)
    return math.ldexp(round(mantissa * (1 << AVERAGE_BITS)), exponent - AVERAGE_BITS)


class BM25F(scoring.BM25F):  # type: ignore[misc]
    """Whoosh's BM25F (same defaults, same formula) over the rounded average."""

    def scorer(self, searcher: Any, fieldname: str, text: Any, qf: float = 1) -> Any:
        if not searcher.schema[fieldname].scorable:
            return scoring.WeightScorer.for_(searcher, fieldname, text)
        b = self._field_B.get(fieldname, self.B)
        return _Scorer(searcher, fieldname, text, b, self.K1, qf=qf)


class _Scorer(scoring.BM25FScorer):  # type: ignore[misc]
    def __init__(
        self, searcher: Any, fieldname: str, text: Any, B: float, K1: float, qf: float = 1
    ) -> None:
        # Whoosh's BM25FScorer.__init__ but for the average (set before ``setup``,
        # which computes the term's best possible score with it).
        self.idf = searcher.get_parent().idf(fieldname, text)
        self.avgfl = average_length(searcher, fieldname)
        self.B = B
        self.K1 = K1
        self.qf = qf
        self.setup(searcher, fieldname, text)
