"""How the suggestion signals combine: every weight in one place.

A candidate's evidence is a handful of features, each in [0, 1] (the success
rate is centred on 0 so an article nobody has judged yet is neither helped nor
hurt). The ranking uses their weighted sum; the score shown to people is that
sum passed through a logistic curve fitted so that it reads as "how often the
top suggestion with this score was right" on the labelled evaluation set.

The weights were chosen with ``knownfix eval`` (``bench/tune_suggestions.py``
searches the grid and refits the curve) on incident-eval-dev, all four modes
(full and title, with and without ``--replay``) at once, so that no mode buys
its figures with another's. They were not tuned to single incidents. Measured
with these weights: full MRR 0.997 (0.997 with replay), title MRR 0.915, title
with replay 0.927. Before titles were compared in meaning (a TF-IDF cosine of
their words instead, at weight 0.4), title mode had 0.887 and 0.908: the title
weight and the signature weight rose together, and history fell from 1.0 to 0.8.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True, slots=True)
class Weights:
    # BM25F relevance of the candidate to the incident's most informative words,
    # relative to the best candidate for the same incident.
    text: float = 1.0
    # How alike the draft's title and the candidate's are in meaning (the cosine of
    # their sentence vectors, relative to the likest candidate's, or to
    # ``title_floor`` when none is that alike): a one-line alert or a title typed so
    # far names the trouble the article's title names, often in other words ("cannot
    # log in to the database", "password authentication failed").
    title: float = 1.5
    # Unrelated titles have cosines of 0 to about 0.2: relative to such a best, noise
    # would look like a perfect match and inflate the score. 0.3, 0.35 and 0.4 rank
    # alike (title MRR within 0.002, replay within 0.003); 0 ranks a little better
    # (0.920 / 0.927) with no such guard.
    title_floor: float = 0.4
    # Normalised error lines shared with the candidate (1 for an identical line).
    signature: float = 1.3
    # The candidate is tied to the incident's service / has its category. Not measured:
    # the eval's drafts name neither, so these are modest tie-breakers set by hand.
    service: float = 0.15
    category: float = 0.15
    # Similar resolved incidents were resolved by (or accepted) this candidate.
    history: float = 0.8
    # The eval cannot measure this one (it has no votes or rejections, and its resolved
    # counts only say which articles are popular: 0 and 0.1 differ by 0.003 MRR in one
    # mode); a small weight keeps explicit verdicts counting.
    # Smoothed share of good outcomes (resolved by, accepted, helpful) among all
    # judged outcomes (those plus rejected and unhelpful), centred on 0.
    success: float = 0.1
    # The logistic curve from weighted sum to the displayed score.
    scale: float = 2.74
    bias: float = -4.99
    # Beta prior of the success rate: a new article counts as 2 good outcomes in 4.
    prior_good: float = 2.0
    prior_bad: float = 2.0

    def calibrated(self, total: float) -> float:
        return 1.0 / (1.0 + math.exp(-(self.scale * total + self.bias)))

    def success_rate(self, good: float, bad: float) -> float:
        """Centred: 0 for no evidence, towards +0.5 / -0.5 as outcomes accumulate."""
        prior = self.prior_good / (self.prior_good + self.prior_bad)
        rate = (good + self.prior_good) / (good + bad + self.prior_good + self.prior_bad)
        return rate - prior


DEFAULT = Weights()
