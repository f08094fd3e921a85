"""Choose the suggestion weights with the eval, and refit the score's calibration.

    .venv/bin/python bench/tune_suggestions.py [--articles F ...] [--incidents F]

Runs the real eval path once per mode (full and title, with and without
``--replay``), keeps every candidate's signal values, then searches a grid of
weights offline (the candidates and their signals do not depend on the
weights) for the best mean MRR over the four runs, and fits the logistic curve
that turns the weighted total of a top suggestion into "how often it was right".
Paste the result into ``knowledge/suggestions/weights.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import math
import pickle
import sys
from pathlib import Path

from knowledge.evaluation import service as evaluation
from knowledge.suggestions.service import Candidate
from knowledge.suggestions.weights import DEFAULT, Weights

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "incident-eval-dev"
GRID = {
    "title": (0.0, 0.5, 1.0, 1.25, 1.5, 1.75, 2.0),
    "signature": (0.4, 0.8, 1.0, 1.3, 1.6),
    "history": (0.0, 0.4, 0.6, 0.8, 1.0, 1.2, 1.5),
    "success": (0.0, 0.1, 0.2, 0.4),
}
Row = tuple[frozenset[str], list[tuple[str | None, dict[str, float]]]]


async def collect(articles: list[Path], incidents: Path) -> dict[str, list[Row]]:
    runs: dict[str, list[Row]] = {}
    for mode, replay in itertools.product(evaluation.MODES, (False, True)):
        rows: list[Row] = []

        def observe(
            incident: evaluation.LabelledIncident,
            found: list[Candidate],
            slugs: dict[int, str],
            rows: list[Row] = rows,
        ) -> None:
            rows.append((
                incident.expected,
                [(slugs.get(c.target.id) if c.key.startswith("article:") else None,
                  {s.name: s.value for s in c.signals}) for c in found],
            ))  # fmt: skip

        await evaluation.run(
            article_files=articles, incidents_file=incidents, mode=mode, replay=replay,
            observe=observe,
        )  # fmt: skip
        runs[f"{mode}{' replay' if replay else ''}"] = rows
    return runs


def total(values: dict[str, float], weights: Weights) -> float:
    return sum(getattr(weights, name) * value for name, value in values.items())


def measure(rows: list[Row], weights: Weights) -> tuple[float, float, float]:
    """MRR, Recall@1 and Recall@3 of one run under ``weights``."""
    reciprocal, at1, at3 = 0.0, 0, 0
    for expected, found in rows:
        order = sorted(found, key=lambda c: -total(c[1], weights))
        rank = next((i for i, (slug, _) in enumerate(order, 1) if slug in expected), None)
        if rank:
            reciprocal += 1 / rank
            at1 += rank == 1
            at3 += rank <= 3
    n = len(rows) or 1
    return reciprocal / n, at1 / n, at3 / n


def calibrate(runs: dict[str, list[Row]], weights: Weights) -> tuple[float, float]:
    """Logistic regression of "the top suggestion was right" on its weighted total."""
    points = []
    for rows in runs.values():
        for expected, found in rows:
            if found:
                slug, values = max(found, key=lambda c: total(c[1], weights))
                points.append((total(values, weights), float(slug in expected)))
    scale, bias = 1.0, 0.0
    for _ in range(5000):  # plain gradient descent: two parameters, a few hundred points
        grad_s = grad_b = 0.0
        for x, y in points:
            p = 1 / (1 + math.exp(-(scale * x + bias)))
            grad_s += (p - y) * x
            grad_b += p - y
        scale -= 0.5 * grad_s / len(points)
        bias -= 0.5 * grad_b / len(points)
    return scale, bias


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", action="append", type=Path)
    parser.add_argument("--incidents", type=Path, default=DATA / "incidents.jsonl")
    parser.add_argument("--cache", type=Path, help="keep the collected signals in this file")
    args = parser.parse_args()
    if args.cache and args.cache.exists():
        runs = pickle.loads(args.cache.read_bytes())  # noqa: S301 - our own file
    else:
        runs = asyncio.run(collect(args.articles or [DATA / "articles.jsonl"], args.incidents))
        if args.cache:
            args.cache.write_bytes(pickle.dumps(runs))
    results = []
    for values in itertools.product(*GRID.values()):
        weights = dataclasses.replace(DEFAULT, **dict(zip(GRID, values, strict=True)))
        figures = {name: measure(rows, weights) for name, rows in runs.items()}
        mean = sum(f[0] for f in figures.values()) / len(figures)
        results.append((mean, weights, figures))
    results.sort(key=lambda r: -r[0])
    for mean, weights, figures in [
        *results[:5],
        *(r for r in results if r[1] == DEFAULT),
    ]:
        chosen = {name: getattr(weights, name) for name in GRID}
        sys.stdout.write(f"mean MRR {mean:.4f}  {chosen}\n")
        for name, (mrr, at1, at3) in figures.items():
            sys.stdout.write(f"    {name:13} MRR {mrr:.3f}  R@1 {at1:.3f}  R@3 {at3:.3f}\n")
    scale, bias = calibrate(runs, results[0][1])
    sys.stdout.write(f"calibration for the best: scale={scale:.2f} bias={bias:.2f}\n")


if __name__ == "__main__":
    main()
