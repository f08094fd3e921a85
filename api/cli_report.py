"""``knownfix report``: the knowledge report, as text for people or one JSON object.

Like the agent commands, it acts as the holder of ``KNOWNFIX_TOKEN``: the report is
for knowledge managers and admins, and a shell that can read the database URL is
not thereby one. It calls the same service as GraphQL's ``knowledgeReport`` and
shows the same figures; references and global ids let a script go on in GraphQL
(``captureKnowledge`` with a gap's incident id).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from api import plain
from api.cli import _out, _settings
from api.cli_agents import (
    TOKEN_VARIABLE,
    _print_json,
    _table,
    open_fresh_index,
    principal_from_env,
    printable,
)
from knowledge.catalog.models import Service
from knowledge.config import Settings
from knowledge.db import utcnow
from knowledge.reports import service as reports
from knowledge.search.index import SearchIndex

INCIDENTS_SHOWN = 10


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        days = 0
    if not 1 <= days <= 366:
        raise argparse.ArgumentTypeError("expected a number of days from 1 to 366")
    return days


def _moment(value: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected an ISO 8601 time with its offset, e.g. 2026-01-01T00:00:00Z"
        ) from None


def _items(value: str) -> int:
    try:
        size = int(value)
    except ValueError:
        size = -1
    if not 0 <= size <= reports.MAX_ITEMS:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to {reports.MAX_ITEMS}")
    return size


def report_view(report: reports.KnowledgeReport, services: dict[int, str]) -> dict[str, Any]:
    scope, gaps = report.scope, report.gaps
    return {
        "window": {"start": plain.when(scope.start), "end": plain.when(scope.end)},
        "stale_after_days": scope.stale_after_days,
        "knowledge_gaps": {
            "total_gaps": gaps.total_gaps,
            "uncovered_incidents": gaps.uncovered_incidents,
            "clustered_incidents": gaps.clustered_incidents,
            "text_compared": gaps.text_compared,
            "gaps": [
                {
                    "count": g.count,
                    "downtime_seconds": g.downtime_seconds,
                    "title": g.capture_from.title,
                    "reason": g.reason,
                    "service": services.get(g.service_id or 0),
                    "category": g.category,
                    "error_signature": g.signature,
                    "terms": g.terms,
                    "incidents": [plain.thing(i) for i in g.incidents[:INCIDENTS_SHOWN]],
                    "capture_knowledge": {
                        "mutation": reports.CAPTURE_MUTATION,
                        "incident": plain.thing(g.capture_from),
                    },
                }
                for g in gaps.gaps
            ],
        },
        "stale_articles": {
            "total": report.stale.total,
            "articles": [
                {
                    **plain.thing(s.article),
                    "last_viewed_at": plain.when(s.last_viewed_at),
                    "last_linked_at": plain.when(s.last_linked_at),
                    "last_activity_at": plain.when(s.last_activity_at),
                    "idle_days": s.idle_days,
                }
                for s in report.stale.articles
            ],
        },
        "poor_performers": [
            {
                **plain.thing(p.article),
                "shown": p.shown,
                "accepted": p.accepted,
                "rejected": p.rejected,
                "resolved": p.resolved,
                "helpful_votes": p.helpful_votes,
                "unhelpful_votes": p.unhelpful_votes,
                "rejection_rate": p.rejection_rate,
                "helpful_ratio": p.helpful_ratio,
                "score": p.score,
                "reasons": p.reasons,
            }
            for p in report.poor_performers
        ],
        "possible_duplicates": [
            {
                "first": plain.thing(d.first),
                "second": plain.thing(d.second),
                "overlap": d.overlap,
                "text_similarity": d.text_similarity,
                "shared_signatures": d.shared_signatures,
                "reasons": d.reasons,
            }
            for d in report.duplicates
        ],
        "top_articles": [
            {
                **plain.thing(t.article),
                "incidents_resolved": t.incidents_resolved,
                "downtime_saved_seconds": t.downtime_saved_seconds,
                "median_time_to_restore_seconds": t.median_time_to_restore_seconds,
            }
            for t in report.top_articles
        ],
    }


def _hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.1f} h"


def render_report(view: dict[str, Any]) -> list[str]:
    window = view["window"]
    lines = [printable(f"Knowledge report {window['start']} to {window['end']}")]
    gaps = view["knowledge_gaps"]
    lines += ["", printable(f"Knowledge gaps: {gaps['total_gaps']} "
                            f"({gaps['uncovered_incidents']} uncovered incidents)")]  # fmt: skip
    if gaps["gaps"]:
        rows = [["COUNT", "DOWNTIME", "CAPTURE FROM", "TITLE"]]
        for g in gaps["gaps"]:
            capture = g["capture_knowledge"]["incident"]["ref"]
            rows.append([str(g["count"]), _hours(g["downtime_seconds"]), capture, g["title"]])
        lines += _table(rows)
    stale = view["stale_articles"]
    lines += [
        "",
        f"Stale articles (idle {view['stale_after_days']} days or more): {stale['total']}",
    ]
    if stale["articles"]:
        rows = [["IDLE DAYS", "ARTICLE"]]
        rows += [[str(s["idle_days"]), s["ref"]] for s in stale["articles"]]
        lines += _table(rows)
    lines += ["", f"Poor performers: {len(view['poor_performers'])}"]
    if view["poor_performers"]:
        rows = [["SCORE", "ARTICLE", "WHY"]]
        rows += [[f"{p['score']:.2f}", p["ref"], "; ".join(p["reasons"])]
                 for p in view["poor_performers"]]  # fmt: skip
        lines += _table(rows)
    lines += ["", f"Possible duplicates: {len(view['possible_duplicates'])}"]
    if view["possible_duplicates"]:
        rows = [["OVERLAP", "FIRST", "SECOND", "WHY"]]
        rows += [[f"{d['overlap']:.2f}", d["first"]["ref"], d["second"]["ref"],
                  "; ".join(d["reasons"])] for d in view["possible_duplicates"]]  # fmt: skip
        lines += _table(rows)
    lines += ["", f"Top articles: {len(view['top_articles'])}"]
    if view["top_articles"]:
        rows = [["RESOLVED", "SAVED", "ARTICLE"]]
        rows += [[str(t["incidents_resolved"]), _hours(t["downtime_saved_seconds"]), t["ref"]]
                 for t in view["top_articles"]]  # fmt: skip
        lines += _table(rows)
    return lines


async def _report(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    db = settings.database()
    index: SearchIndex | None = None
    try:
        principal = await principal_from_env(db)
        reports.require_reader(principal)  # before touching the index
        now = utcnow()
        end = args.to or now
        start = args.since or end - dt.timedelta(days=args.days)
        index = await open_fresh_index(db, settings)
        async with db.read() as session:
            report = await reports.knowledge_report(
                session=session, principal=principal, index=index, start=start, end=end,
                now=now, stale_after_days=args.stale_after_days, first=args.first,
            )  # fmt: skip
            ids = {g.service_id for g in report.gaps.gaps if g.service_id is not None}
            rows = await session.execute(
                sa.select(Service.id, Service.slug).where(Service.id.in_(ids))
            )
            services: dict[int, str] = dict(rows.all())
        return report_view(report, services)
    finally:
        if index is not None:
            await asyncio.to_thread(index.close)
        await db.dispose()


def cmd_report(args: argparse.Namespace) -> int:
    view = asyncio.run(_report(_settings(args), args))
    if args.json:
        _print_json(view)
    else:
        for line in render_report(view):
            _out(line)
    return 0


def add_command(
    commands: Any,
    with_database: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    report = with_database(
        commands.add_parser(
            "report",
            help="knowledge gaps, stale, poor and duplicate articles, top articles",
            description=f"Acts as the holder of ${TOKEN_VARIABLE}, who must be a knowledge "
            "manager or an admin. The window is the last --days days, or --from/--to.",
        )
    )
    report.add_argument("--days", type=_days, default=30, help="the last N days (1-366)")
    report.add_argument(
        "--from", dest="since", metavar="TIME", type=_moment, help="window start, ISO 8601"
    )
    report.add_argument(
        "--to", metavar="TIME", type=_moment, help="window end, ISO 8601 (default: now)"
    )
    report.add_argument(
        "--stale-after-days", type=int, default=reports.DEFAULT_STALE_DAYS,
        help=f"idle days before an article is stale (1-{reports.MAX_STALE_DAYS})",
    )  # fmt: skip
    report.add_argument("--first", type=_items, default=reports.DEFAULT_ITEMS,
                        help=f"entries per section (0-{reports.MAX_ITEMS})")  # fmt: skip
    report.add_argument("--index-dir", help="overrides KNOWNFIX_INDEX_DIR")
    report.add_argument("--json", action="store_true", help="one JSON object")
    report.set_defaults(handler=cmd_report)
