"""Reading and writing the two exchange formats.

Markdown: one article per file, YAML front matter between ``---`` lines, then
the body. JSON Lines: one record per line, either an article (``"type":
"article"``, or any record with ``symptoms``/``cause``/``resolution``, the
shape of the evaluation set) or a known error (``"type": "known_error"``).
Parsing never raises on bad content: it returns the problems it found, each
with its file, line and field, so a whole batch can be reported at once.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ARTICLE_FIELDS = (
    "slug", "title", "summary", "kind", "status", "category", "tags", "services",
    "known_error", "error_signatures", "sources",
)  # fmt: skip
KNOWN_ERROR_FIELDS = (
    "key", "title", "symptoms", "root_cause", "workaround", "permanent_fix", "status",
    "category", "error_signatures", "services",
)  # fmt: skip
EVAL_SECTIONS = (("symptoms", "Symptoms"), ("cause", "Cause"), ("resolution", "Resolution"),
                 ("workaround", "Workaround"))  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


@dataclasses.dataclass(slots=True)
class Record:
    kind: str  # "article" or "known_error"
    fields: dict[str, Any]
    file: str
    line: int

    def problem(self, field: str | None, reason: str) -> Problem:
        return Problem(self.file, self.line, field, reason)


def read_path(path: Path) -> tuple[list[Record], list[Problem]]:
    """Every record under ``path`` (a file, or a folder of .md and .jsonl files)."""
    files = (
        sorted(p for p in path.rglob("*") if p.suffix in (".md", ".jsonl"))
        if path.is_dir()
        else [path]
    )
    records: list[Record] = []
    problems: list[Problem] = []
    if not files:
        problems.append(Problem(str(path), 0, None, "no .md or .jsonl files here"))
    for file in files:
        if not file.exists():
            problems.append(Problem(str(file), 0, None, "no such file"))
            continue
        try:
            text = file.read_text(encoding="utf-8-sig")  # editors on Windows add a BOM
        except (OSError, UnicodeDecodeError) as error:
            problems.append(Problem(str(file), 0, None, f"cannot read: {error}"))
            continue
        if file.suffix == ".jsonl":
            for item in _read_jsonl(str(file), text):
                (records if isinstance(item, Record) else problems).append(item)  # type: ignore[arg-type]
        elif file.suffix == ".md":
            item = _read_markdown(str(file), text)
            (records if isinstance(item, Record) else problems).append(item)  # type: ignore[arg-type]
        else:
            problems.append(Problem(str(file), 0, None, "expected a .md or .jsonl file"))
    return records, problems


def _read_markdown(file: str, text: str) -> Record | Problem:
    if not text.startswith("---\n"):
        return Problem(file, 1, None, "missing front matter (a '---' line, YAML, '---')")
    end = text.find("\n---\n", 4)
    if end < 0:
        return Problem(file, 1, None, "front matter is not closed by a '---' line")
    try:
        meta = yaml.safe_load(text[4:end])
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        return Problem(file, line, None, f"front matter is not valid YAML: {error}")
    if not isinstance(meta, dict):
        return Problem(file, 2, None, "front matter must be a mapping of fields")
    unknown = sorted(set(meta) - set(ARTICLE_FIELDS))
    if unknown:
        return Problem(file, 2, unknown[0], "unknown field")
    body = text[end + 5 :]
    return Record("article", {**meta, "body": body}, file, 1)


def _read_jsonl(file: str, text: str) -> Iterator[Record | Problem]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            yield Problem(file, number, None, f"not valid JSON: {error.msg}")
            continue
        if not isinstance(item, dict):
            yield Problem(file, number, None, "expected a JSON object")
            continue
        kind = item.pop("type", None)
        if kind == "known_error":
            unknown = sorted(set(item) - set(KNOWN_ERROR_FIELDS))
            if unknown:
                yield Problem(file, number, unknown[0], "unknown field")
                continue
            yield Record("known_error", item, file, number)
        elif kind == "article" or (kind is None and "body" in item):
            unknown = sorted(set(item) - {*ARTICLE_FIELDS, "body"})
            if unknown:
                yield Problem(file, number, unknown[0], "unknown field")
                continue
            yield Record("article", item, file, number)
        elif kind is None and {"symptoms", "cause", "resolution"} & set(item):
            yield Record("article", _from_eval(item), file, number)
        else:
            yield Problem(file, number, "type", "expected 'article' or 'known_error'")


def _from_eval(item: dict[str, Any]) -> dict[str, Any]:
    """An evaluation-set record as an article whose body has the usual sections."""
    parts = [f"## {heading}\n\n{item[key]}" for key, heading in EVAL_SECTIONS if item.get(key)]
    fields = {k: v for k, v in item.items() if k not in dict(EVAL_SECTIONS) and k != "id"}
    return {
        "slug": item.get("id"),
        "kind": "known_error",
        "status": "published",
        **fields,
        "body": "\n\n".join(parts) + "\n",
    }


def write_markdown(fields: dict[str, Any], body: str) -> str:
    """The Markdown form of an article: front matter in a fixed order, then the body."""
    meta = {k: fields[k] for k in ARTICLE_FIELDS if fields.get(k) not in (None, [], "")}
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{front}---\n{body}"


def write_jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records)
