"""bdp.durations: the durations people type, and a clear error for the ones they mistype."""

from __future__ import annotations

import pytest

from bdp.durations import format_duration, parse_duration
from bdp.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("2h", 7200),
        ("7d", 604800),
        ("1h30m", 5400),
        ("1d2h3m4s", 93784),
        ("1.5h", 5400),
        (" 2H ", 7200),
        ("1h 30m", 5400),
    ],
)
def test_a_duration_is_numbers_with_units_largest_first(text: str, seconds: float) -> None:
    assert parse_duration(text, "--since") == seconds


def test_a_bare_number_is_refused_with_a_hint_to_add_a_unit() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_duration("7", "--since")
    assert raised.value.exit_code == 2
    assert str(raised.value) == "--since='7' has no unit (add one, e.g. 7h or 7d)"


def test_a_bare_number_is_read_in_the_unit_the_caller_names() -> None:
    assert parse_duration("30", "BDP_TIMEOUT", bare_unit="m") == 1800


@pytest.mark.parametrize(
    "text", ["", "h", "soon", "-5m", "0s", "0h0m", "30m1h", "1h1h", "5w", "1h30", "1,5h", "m5"]
)
def test_anything_else_is_not_a_duration_and_the_error_lists_the_forms(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_duration(text, "--since")
    assert str(raised.value).startswith(f"--since={text!r} is not a duration (use ")
    assert "1h30m" in raised.value.hint


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59.6, "1m"), (5400, "1h30m"), (86400, "1d"), (90061, "1d1h1m1s")],
)
def test_format_duration_writes_what_parse_duration_reads_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    if seconds >= 1:
        assert parse_duration(text, "x") == round(seconds)


@pytest.mark.parametrize(
    ("text", "unit", "seconds"),
    [("30", "s", 30), ("30", "m", 1800), ("1.5", "h", 5400), ("2", "d", 172800), ("90s", "m", 90)],
)
def test_a_bare_number_takes_the_callers_unit_and_a_unit_still_wins(
    text: str, unit: str, seconds: float
) -> None:
    assert parse_duration(text, "x", bare_unit=unit) == seconds


def test_where_a_bare_number_is_allowed_the_error_says_which_unit_it_is_in() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_duration("soon", "--timeout", bare_unit="m")
    assert raised.value.hint.startswith("use minutes (30) or a number with a unit: 90s")


def test_zero_is_refused_unless_the_caller_allows_a_wait_of_none() -> None:
    with pytest.raises(ConfigError, match="is not a duration"):
        parse_duration("0", "BDP_HEARTBEAT", bare_unit="s")
    assert parse_duration("0", "BDP_LOCK_WAIT", bare_unit="s", allow_zero=True) == 0
    assert parse_duration("0s", "BDP_LOCK_WAIT", allow_zero=True) == 0
