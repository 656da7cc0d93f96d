"""Durations as people type them: ``90s``, ``10m``, ``2h``, ``7d``, ``1h30m``.

The one parser of every duration bdp reads, options and ``BDP_*`` settings alike. A bare
number is ambiguous (is ``7`` seconds or days?), so it is refused unless the caller names the
unit it means, which is then the unit the option's help and the README give; the error says
to add one. An age that decides what gets deleted (``--older-than``, ``BDP_KEEP_BRANCHES``)
takes no bare number at all.
"""

from __future__ import annotations

import re

from bdp.errors import ConfigError

#: Seconds in each unit a duration may use, largest first (the order parts must come in).
UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_FORMS = "a number with a unit: 90s, 10m, 2h, 7d or 1h30m"
#: What a bare number is read as, by unit, for the error's hint.
UNIT_NAMES = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(
    text: str, name: str, bare_unit: str | None = None, *, allow_zero: bool = False
) -> float:
    """Seconds from ``text``; ConfigError naming ``name`` (the option) when it is not one.

    Args:
        text: parts of a number and a unit (d, h, m, s), largest unit first, each once.
        name: the option or variable, for the error line.
        bare_unit: the unit a bare number is taken in; None refuses bare numbers.
        allow_zero: zero is a duration (a wait that may be none at all).

    Raises:
        ConfigError: not a duration, zero (unless allowed), or a bare number where a unit
            is needed.
    """
    cleaned = "".join(text.split()).lower()
    if _NUMBER.fullmatch(cleaned):
        if bare_unit is None:
            raise ConfigError(
                f"{name}={text!r} has no unit", f"add one, e.g. {cleaned}h or {cleaned}d"
            )
        cleaned += bare_unit
    seconds = _parts_seconds(cleaned)
    if seconds is None or (seconds == 0 and not allow_zero):
        bare = f"{UNIT_NAMES[bare_unit]} (30) or " if bare_unit else ""
        raise ConfigError(f"{name}={text!r} is not a duration", f"use {bare}{_FORMS}")
    return seconds


def _parts_seconds(text: str) -> float | None:
    """The sum of ``text``'s parts, or None unless it is nothing but parts in unit order."""
    parts = list(_PART.finditer(text))
    if not parts or "".join(p.group(0) for p in parts) != text:
        return None
    units = [p.group(2) for p in parts]
    order = list(UNIT_SECONDS)
    if len(set(units)) != len(units) or units != sorted(units, key=order.index):
        return None
    return sum(float(p.group(1)) * UNIT_SECONDS[p.group(2)] for p in parts)


def format_duration(seconds: float) -> str:
    """The shortest text `parse_duration` reads back as ``seconds`` (whole seconds): ``1h30m``."""
    left = max(0, round(seconds))
    parts = []
    for unit, size in UNIT_SECONDS.items():
        count, left = divmod(left, int(size))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
