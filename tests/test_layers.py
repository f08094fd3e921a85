"""The rule of direction: ``knowledge`` never imports ``api`` or strawberry."""

from __future__ import annotations

import ast
from pathlib import Path

from knowledge.migrate import PROJECT_ROOT

FORBIDDEN = ("api", "strawberry", "starlette")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_knowledge_does_not_depend_on_the_interfaces() -> None:
    offenders = {
        f"{path.relative_to(PROJECT_ROOT)} imports {name}"
        for path in (PROJECT_ROOT / "knowledge").rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN
    }
    assert not offenders, sorted(offenders)


def test_the_walk_sees_the_knowledge_package() -> None:
    files = list((PROJECT_ROOT / "knowledge").rglob("*.py"))
    assert len(files) > 10
    assert "sqlalchemy" in imported_modules(PROJECT_ROOT / "knowledge" / "db.py")
