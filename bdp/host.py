"""The name this machine goes by in a shared queue.

Runs, locks, consumer heartbeats and the janitor's sweeps say which host they are on, and a
janitor ends processes or frees locks only on its own host. That name is the hostname,
unless ``BDP_HOST`` gives another: two consumers on one machine that should count as two
hosts (containers sharing a hostname, or tests simulating several machines) set it.
"""

from __future__ import annotations

import os
import socket


def host_name() -> str:
    """``BDP_HOST``, else the hostname."""
    return os.environ.get("BDP_HOST") or socket.gethostname()
