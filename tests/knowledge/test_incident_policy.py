"""Priority from impact and urgency, and SLA targets: defaults and configuration."""

from __future__ import annotations

import datetime as dt

import pytest

from knowledge.config import ConfigError, Settings
from knowledge.incidents.models import Level
from knowledge.incidents.policy import IncidentPolicy, parse_matrix, parse_sla

H, M, L = Level.HIGH, Level.MEDIUM, Level.LOW


@pytest.mark.parametrize(
    ("impact", "urgency", "priority"),
    [(H, H, 1), (H, M, 2), (M, H, 2), (H, L, 3), (M, M, 3), (L, H, 3), (M, L, 4), (L, M, 4),
     (L, L, 5)],
)  # fmt: skip
def test_the_default_matrix_is_the_usual_itil_one(
    impact: Level, urgency: Level, priority: int
) -> None:
    assert IncidentPolicy().priority(impact, urgency) == priority


def test_due_times_follow_the_priority_targets() -> None:
    detected = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
    respond, resolve = IncidentPolicy().due(1, detected)
    assert (respond - detected, resolve - detected) == (
        dt.timedelta(minutes=15),
        dt.timedelta(hours=4),
    )
    respond, resolve = IncidentPolicy().due(5, detected)
    assert (respond - detected, resolve - detected) == (dt.timedelta(days=1), dt.timedelta(days=5))


def test_matrix_and_sla_can_be_configured() -> None:
    settings = Settings.from_env(
        {"KNOWNFIX_PRIORITY_MATRIX": "low/low=4, medium/medium=2", "KNOWNFIX_SLA": "P2=5m/1h"}
    )
    policy = settings.incident_policy()
    assert policy.priority(L, L) == 4
    assert policy.priority(M, M) == 2
    assert policy.priority(H, H) == 1  # untouched entries keep their defaults
    assert policy.sla[2].respond == dt.timedelta(minutes=5)
    assert policy.sla[2].resolve == dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("KNOWNFIX_PRIORITY_MATRIX", "huge/high=1"), ("KNOWNFIX_PRIORITY_MATRIX", "high/high=9"),
     ("KNOWNFIX_PRIORITY_MATRIX", "high=1"), ("KNOWNFIX_SLA", "P6=1m/1h"),
     ("KNOWNFIX_SLA", "P1=15/4h"), ("KNOWNFIX_SLA", "P1=4h/15m"), ("KNOWNFIX_SLA", "P1")],
)  # fmt: skip
def test_bad_policy_configuration_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: value})
    assert raised.value.variable == variable


def test_parsers_accept_empty_text_as_the_defaults() -> None:
    assert parse_matrix("") == IncidentPolicy().matrix
    assert parse_sla("") == dict(IncidentPolicy().sla)
