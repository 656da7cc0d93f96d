"""The command line: parse, call one function elsewhere, render. Nothing imports it.

`main` is the click group and its single error boundary; `queue_commands` (enqueue, run),
`view_commands` (status, logs, metrics, clean), `report_commands` (report),
`steer_commands` (say, stop), `doctor_command` (doctor), `config_command` (config) and
`worker_command` (worker) register the commands on it; `options`
holds the options several commands share; `render` draws with rich (`status_view` and
`status_watch` draw `bdp status`, `report_view` `bdp report`); `log_follow` is `bdp logs -f`;
`oneshot` drives `bdp run` (an in-process consumer until the repo's work is
done); `ending` is the process entry point (read-only commands skip the interpreter's
teardown). Everything heavy is imported inside the command that needs it, so `bdp --help`
and `bdp status` stay fast.
"""

from bdp.cli import (
    config_command,
    doctor_command,
    queue_commands,
    report_commands,
    steer_commands,
    view_commands,
    worker_command,
)
from bdp.cli.main import main

__all__ = [
    "config_command",
    "doctor_command",
    "main",
    "queue_commands",
    "report_commands",
    "steer_commands",
    "view_commands",
    "worker_command",
]
