"""Error signatures: what a program printed, with the parts that vary between occurrences
replaced by placeholders, so two reports of one fault can be recognised as such."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knowledge.suggestions import signatures
from knowledge.suggestions.signatures import (
    MAX_LINES,
    Match,
    error_lines,
    normalise,
    primary,
    signatures_of,
    similarity,
)

# --- normalising one line -----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("worker 4127 exited with status 137", "worker <n> exited with status <n>"),
        ("retry 3 of 5.2 failed", "retry <n> of <n> failed"),
        ("request 9f1c2ab4-1d2e-4f00-A1B2-0123456789ab failed",
         "request <uuid> failed"),
        ("segfault at 0x7ffd1c2b ip 00007f3a9c2b1e40 error 4",
         "segfault at <hex> ip <hex> error <n>"),
        ("commit 3fa2b9c1d0 failed to apply", "commit <hex> failed to apply"),
        ("connect ECONNREFUSED 10.0.3.17:6379", "connect econnrefused <ip>"),
        ("connect ECONNREFUSED 127.0.0.1", "connect econnrefused <ip>"),
        ("upstream 2001:db8::8a2e:370:7334 refused the connection",
         "upstream <ip> refused the connection"),
        ("upstream fe80::1ff:fe23:4567:890a refused the connection",
         "upstream <ip> refused the connection"),
        ("upstream ::1 refused the connection", "upstream <ip> refused the connection"),
        ("dial tcp redis-3.cache.svc.cluster.local:6379: i/o timeout",
         "dial tcp <host>: i/o timeout"),
        ("could not resolve host api.payments.example.com", "could not resolve host <host>"),
        ("cannot open /var/lib/postgresql/14/main/postmaster.pid: Permission denied",
         "cannot open <path>: permission denied"),
        (r"cannot load C:\Program-Files\app\bin\native.dll", "cannot load <path>"),
        ("GET https://api.example.com/v1/users?id=5 failed: timeout", "get <url> failed: timeout"),
        ("ERROR: permission denied for table 'orders'", "error: permission denied for table <str>"),
        ('FATAL: role "checkout" does not exist', "fatal: role <str> does not exist"),
        ("user `svc_orders` is not allowed", "user <str> is not allowed"),
    ],
)  # fmt: skip
def test_variable_parts_become_placeholders(line: str, expected: str) -> None:
    assert normalise(line) == expected


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ax0f9:./\\-'\"` eE<>@~\u0663", max_size=60))
def test_a_rule_skipped_for_lack_of_its_character_could_not_have_matched(line: str) -> None:
    # Each rule runs only when the line holds what it needs: the same result as
    # trying every rule on every line.
    text = line.strip()[: signatures.MAX_LINE_LENGTH]
    for pattern, placeholder, _ in signatures._RULES:
        text = pattern.sub(placeholder, text)
    assert normalise(line) == re.sub(r"\s+", " ", text).strip().lower()


def test_a_quoted_phrase_with_spaces_is_part_of_the_message_not_a_value() -> None:
    assert normalise('panic: "index out of range" in handler') == (
        'panic: "index out of range" in handler'
    )


def test_words_that_only_look_like_numbers_or_hex_stay() -> None:
    assert normalise("utf8mb4 charset invalid for x509 deadbeefs") == (
        "utf8mb4 charset invalid for x509 deadbeefs"
    )


def test_case_and_spacing_do_not_matter() -> None:
    assert normalise("  Connection   REFUSED\tby peer  ") == normalise("connection refused by peer")


def test_an_overlong_line_is_cut_to_a_bounded_signature() -> None:
    assert len(normalise("error " + "x" * 10_000)) <= 300


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ('connection to server at "db-7.prod.internal" (10.0.3.17), port 5432 failed: '
         'FATAL: password authentication failed for user "svc_orders"',
         'connection to server at "db-2.prod.internal" (10.0.9.4), port 6432 failed: '
         'FATAL: password authentication failed for user "svc_billing"'),
        ("dial tcp cache-01.eu.internal:6379: connect: connection refused",
         "dial tcp cache-17.us.internal:7000: connect: connection refused"),
        ("Error: connect ECONNREFUSED 10.1.1.1:5672",
         "Error: connect ECONNREFUSED 192.168.40.12:5673"),
        ("FileNotFoundError: [Errno 2] No such file: '/data/exports/2024-05-01/report.csv'",
         "FileNotFoundError: [Errno 2] No such file: '/srv/tmp/x/report-7.csv'"),
        ("request 0b1e6c1a-5f7e-4d1a-9a3b-2c8f1e0d9a77 to https://a.example.com/x timed out",
         "request 7d3f0a22-1b4c-4e8d-8f6a-0e9b2d7c5a11 to https://b.example.org/y?z=1 timed out"),
    ],
)  # fmt: skip
def test_two_occurrences_of_one_error_normalise_the_same(first: str, second: str) -> None:
    assert first != second
    assert normalise(first) == normalise(second)


def test_different_errors_stay_different() -> None:
    refused = normalise("dial tcp cache-01.eu.internal:6379: connect: connection refused")
    timeout = normalise("dial tcp cache-01.eu.internal:6379: i/o timeout")
    assert refused != timeout


# --- which lines are error lines ----------------------------------------------------


def test_only_lines_about_a_failure_are_error_lines() -> None:
    text = (
        "We deployed at noon and the dashboards looked fine.\n"
        "> ERROR: could not extend file base/16384/2619: No space left on device\n"
        "Restarting did nothing.\n"
        "  - connection refused by upstream payments\n"
    )
    assert error_lines(text) == [
        "ERROR: could not extend file base/16384/2619: No space left on device",
        "connection refused by upstream payments",
    ]


def test_a_quoted_message_in_prose_is_the_error_line() -> None:
    text = "The checkout fails with 'FATAL: role \"checkout\" does not exist' after deploys."
    assert error_lines(text) == ['FATAL: role "checkout" does not exist']
    assert signatures_of([text]) == ["fatal: role <str> does not exist"]


def test_a_message_in_backticks_is_the_error_line() -> None:
    text = "Clients get `ERROR: relation 'orders' does not exist` on every write."
    assert signatures_of([text]) == ["error: relation <str> does not exist"]


@pytest.mark.parametrize(
    ("prose", "message"),
    [
        ("Sending mail fails with 'ERROR: permission denied for function 'send' in schema "
         "mailer' since Tuesday.",
         "ERROR: permission denied for function 'send' in schema mailer"),
        ("The API crashes with 'TypeError: Cannot read properties of undefined (reading "
         "'send')' after each deploy.",
         "TypeError: Cannot read properties of undefined (reading 'send')"),
        ("We see 'ERROR: relation 'orders' does not exist' on every write.",
         "ERROR: relation 'orders' does not exist"),
    ],
)  # fmt: skip
def test_a_quoted_message_keeps_the_quoted_values_inside_it(prose: str, message: str) -> None:
    assert error_lines(prose) == [message]
    # ... so the prose report and the raw log line share a signature.
    assert signatures_of([prose]) == signatures_of([message])


def test_several_quoted_messages_on_one_line_are_each_a_line() -> None:
    text = "It says 'could not open the spool file' and then 'permission denied for table x'."
    assert error_lines(text) == ["could not open the spool file", "permission denied for table x"]


def test_error_lines_are_bounded() -> None:
    log = "\n".join(f"ERROR: worker {n} failed on job" for n in range(MAX_LINES * 3))
    assert len(error_lines(log)) == MAX_LINES


# --- signatures of texts ------------------------------------------------------------


def test_signatures_of_several_texts_come_first_seen_first_without_repeats() -> None:
    found = signatures_of(
        [
            "ERROR: disk full on /dev/sda1/data volume\nFATAL: cannot write checkpoint 17",
            "ERROR: disk full on /dev/nvme0n1/data volume",
            "",
        ]
    )
    assert found == ["error: disk full on <path> volume", "fatal: cannot write checkpoint <n>"]


def test_lines_with_too_few_words_are_not_signatures() -> None:
    assert signatures_of(["error 12345678", "panic!!! failed!!!"]) == []


# --- similarity ---------------------------------------------------------------------

KNOWN = [
    normalise('connection to server at "db-7.prod.internal" (10.0.3.17), port 5432 failed: '
              'FATAL: password authentication failed for user "svc_orders"'),
    normalise("could not translate host name db-7.prod.internal to address"),
]  # fmt: skip


def test_the_same_normalised_line_is_an_exact_match() -> None:
    ours = [
        normalise('connection to server at "db-2.prod.internal" (10.0.9.4), port 6432 failed: '
                  'FATAL: password authentication failed for user "svc_billing"')
    ]  # fmt: skip
    assert similarity(ours, KNOWN) == Match(1.0, KNOWN[0], exact=True)


def test_a_reworded_line_is_a_partial_match_naming_the_line_it_resembles() -> None:
    ours = [normalise("FATAL: password authentication failed for the orders service account")]
    found = similarity(ours, KNOWN)
    assert 0.0 < found.value < 1.0
    assert (found.line, found.exact) == (KNOWN[0], False)


def test_a_pasted_fragment_of_a_known_line_matches_it_strongly() -> None:
    ours = [normalise('FATAL: password authentication failed for user "svc_orders"')]
    fragment = similarity(ours, KNOWN)
    reworded = similarity(
        [normalise("FATAL: password authentication failed for the orders service account")], KNOWN
    )
    assert fragment.line == KNOWN[0]
    assert fragment.value > reworded.value


def test_word_order_matters_in_a_partial_match() -> None:
    found = similarity(["connection refused by upstream"], ["refused connection to the pool"])
    assert found == Match(0.0, None, exact=False)


def test_lines_that_share_a_phrase_match_partially() -> None:
    found = similarity(
        ["error: could not connect to server: connection refused"],
        ["fatal: could not connect to the database", "disk quota exceeded for uploads"],
    )
    assert 0.0 < found.value < 1.0
    assert found.line == "fatal: could not connect to the database"


def test_two_word_pairs_in_common_between_long_lines_are_chance_not_a_match() -> None:
    ours = ["disk quota exceeded for user uploads bucket"]
    two_pairs = similarity(ours, ["disk quota exceeded on shared volume group"]).value
    three_pairs = similarity(ours, ["disk quota exceeded for user home directories"]).value
    assert 0.0 < two_pairs < 0.25
    assert three_pairs > 2 * two_pairs


def test_nothing_to_compare_is_no_match() -> None:
    nothing = Match(0.0, None, exact=False)
    assert similarity([], KNOWN) == nothing
    assert similarity(KNOWN, []) == nothing
    assert similarity(["<n> <n>"], ["<n> <ip>"]) == nothing


# --- the primary signature ----------------------------------------------------------


def test_the_primary_signature_is_the_first_error_line_of_the_texts_in_order() -> None:
    error_text = "Traceback ...\npsycopg2.OperationalError: could not connect to 10.2.0.4 port 5432"
    title = "Checkout down: connection refused by the database"
    # "Traceback ..." is too short to be a signature: the exception line is the first.
    assert primary([error_text, title, ""]) == (
        "psycopg2.operationalerror: could not connect to <ip> port <n>"
    )
    assert primary(["", title, ""]) == normalise(title)


def test_two_reports_of_one_error_have_the_same_primary_signature() -> None:
    first = primary(["Error: connect ECONNREFUSED 10.1.1.1:5672", "Orders queue down", ""])
    second = primary(["Error: connect ECONNREFUSED 10.9.8.7:5673", "Queue is down again", ""])
    assert first is not None
    assert first == second


def test_a_report_without_an_error_line_has_no_primary_signature() -> None:
    assert primary(["", "Checkout is slow today", "Pages take a few seconds to load"]) is None


def test_the_primary_signature_fits_its_column() -> None:
    huge = "ERROR " + " ".join(f"word{n}x" for n in range(400))
    found = primary([huge])
    assert found is not None
    assert len(found) <= 500


def test_every_line_of_the_error_field_is_an_error_line() -> None:
    line = "upstream prematurely closed connection while reading response header from 10.0.0.5"
    assert signatures_of([line]) == [], "in prose, a line needs a word like 'error'"
    assert signatures_of([], error_text=line) == [
        "upstream prematurely closed connection while reading response header from <ip>"
    ]
    assert primary([], error_text=line) == primary([], error_text=line.replace("5", "7"))
