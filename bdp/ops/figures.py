"""How the report's numbers read, the same in the terminal and in HTML: ``1h05m``,
``$0.4210``, ``12.3k`` tokens, local times."""

from __future__ import annotations

import time


def span(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``2h04m``: whole seconds, two units at most."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def usd(amount: float) -> str:
    """Dollars to the hundredth of a cent, the precision sessions are billed in."""
    return f"${amount:.4f}"


def count(n: int) -> str:
    """``950``, ``12.3k``, ``4.56M``: token counts at a glance."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.2f}M"


def moment(at: float, with_date: bool = True) -> str:
    """A local time: ``2025-06-01 14:05`` (or ``14:05``)."""
    return time.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M", time.localtime(at))


def zone(at: float) -> str:
    """The local time zone's name at ``at``, e.g. ``CEST``."""
    return time.strftime("%Z", time.localtime(at))
