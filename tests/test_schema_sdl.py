"""``schema.graphql`` is generated from the code and must match it."""

from __future__ import annotations

from api.cli import SCHEMA_FILE, main
from api.schema import schema


def test_the_checked_in_schema_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema.as_str() + "\n", (
        "schema.graphql is stale: run 'knownfix schema export'"
    )


def test_export_check_fails_on_a_stale_file(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    stale = tmp_path / "schema.graphql"
    stale.write_text("type Query { old: Int }\n", encoding="utf-8")
    assert main(["schema", "export", "--check", "--output", str(stale)]) == 1
    assert "stale" in capsys.readouterr().err
    assert main(["schema", "export", "--output", str(stale)]) == 0
    assert main(["schema", "export", "--check", "--output", str(stale)]) == 0
