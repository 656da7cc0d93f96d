"""What the API's errors mean for a run: reset times read out of usage-limit texts."""

from __future__ import annotations

import pytest

from bdp.agent.api_errors import reset_time

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"API Error: Claude AI usage limit reached|{int(NOW) + 600}", NOW + 600),
        ("limit exceeded; resets at 2027-01-15T10:00:00Z", 1_800_007_200.0),
        ("Your limit resets 2027-01-15T12:00:00+02:00.", 1_800_007_200.0),
        ("Request rejected (429) · rate limited", None),
        (f"usage limit reached|{int(NOW) - 60}", None),  # already past: no use
    ],
)
def test_reset_times_are_read_from_api_error_texts(text: str, expected: float | None) -> None:
    assert reset_time(text, now=NOW) == expected
