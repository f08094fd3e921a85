"""Values at the edges of their types, found by the fuzzer (tests/api/test_fuzz.py): each is
refused as the client's mistake, never a server error.

A DateTime with an offset can parse and still fall outside years 1-9999 once turned into
UTC: 9999-12-31T23:59:59-14:00 is in year 10000, 0001-01-01T00:00:00+14:00 in year 0.
"""

from __future__ import annotations

import pytest

from knowledge.accounts.roles import Role
from tests.support import Accounts, GraphQLClient

BEYOND_9999 = "9999-12-31T23:59:59-14:00"
BEFORE_YEAR_1 = "0001-01-01T00:00:00+14:00"
OUT_OF_RANGE = [BEYOND_9999, BEFORE_YEAR_1]

METRICS = """
query($start: DateTime!, $end: DateTime!) {
  incidentMetrics(window: {start: $start, end: $end}) { count }
}
"""
REPORT = """
mutation($at: DateTime!) {
  reportIncident(input: {title: "Checkout down", detectedAt: $at}) {
    __typename
    ... on Error { message code field }
  }
}
"""
CREATE_TOKEN = """
mutation($at: DateTime!) {
  createApiToken(input: {expiresAt: $at}) {
    __typename
    ... on Error { message code field }
  }
}
"""


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
@pytest.mark.parametrize("end", ["start", "end"])
async def test_a_metrics_window_out_of_range_in_utc_is_bad_user_input(
    client: GraphQLClient, accounts: Accounts, moment: str, end: str
) -> None:
    viewer = await accounts.create(Role.VIEWER)
    window = {"start": "2024-01-01T00:00:00Z", "end": "2024-02-01T00:00:00Z", end: moment}
    reply = await client(METRICS, window, token=viewer.token)
    [error] = reply.errors
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["field"] == f"window.{end}"
    assert "out of range" in error["message"]


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
@pytest.mark.parametrize(
    ("mutation", "name", "field"),
    [
        (REPORT, "reportIncident", "input.detectedAt"),
        (CREATE_TOKEN, "createApiToken", "input.expiresAt"),
    ],
)
async def test_a_mutation_time_out_of_range_in_utc_is_a_validation_error(
    client: GraphQLClient, accounts: Accounts, moment: str, mutation: str, name: str, field: str
) -> None:
    admin = await accounts.create(Role.ADMIN)
    payload = (await client(mutation, {"at": moment}, token=admin.token)).data[name]
    assert (payload["__typename"], payload["field"]) == ("ValidationError", field), payload
    assert "out of range" in payload["message"]
