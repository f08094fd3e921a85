"""How a suggestion's query is chosen from what the reporter wrote."""

from __future__ import annotations

from knowledge.suggestions.service import telling_words


def test_a_logs_telling_words_are_its_title_and_the_constant_part_of_its_error_lines() -> None:
    signatures = ["fatal: image pull backoff at <host>:<n>", "kernel: redis[<n>]: image pull"]
    assert telling_words("Checkout DOWN", signatures) == {
        "checkout", "down", "fatal", "image", "pull", "backoff", "at", "kernel", "redis",
    }  # fmt: skip
    assert telling_words("", []) == frozenset()
