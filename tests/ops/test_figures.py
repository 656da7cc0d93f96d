"""bdp.ops.figures: the report's numbers read the same in the terminal and on the page."""

from __future__ import annotations

import time

import pytest

from bdp.ops.figures import count, moment, span, usd


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-3, "0s"), (42.4, "42s"), (185, "3m05s"), (7440, "2h04m"), (90000, "25h00m")],
)
def test_spans_are_whole_seconds_in_two_units_at_most(seconds: float, text: str) -> None:
    assert span(seconds) == text


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0"), (950, "950"), (12_345, "12.3k"), (4_560_000, "4.56M")]
)
def test_token_counts_are_short(n: int, text: str) -> None:
    assert count(n) == text


def test_money_is_to_the_hundredth_of_a_cent() -> None:
    assert usd(0.42104) == "$0.4210"


def test_moments_are_local_times_with_or_without_the_date() -> None:
    at = time.mktime((2025, 6, 2, 14, 5, 0, 0, 0, -1))

    assert moment(at) == "2025-06-02 14:05"
    assert moment(at, with_date=False) == "14:05"
