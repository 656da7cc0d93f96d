"""What operators point Huey's consumer at; every bdp task is registered on this ``huey``.

    huey_consumer bdp.consumer.huey -w 4 -k thread

Settings come from the ``BDP_*`` environment of the consumer process, over the user's config
file; one it cannot use stops the start with one ``Error:`` line (what is wrong, what to do),
not a traceback, and a ``BDP_*`` variable bdp does not know is one warning line.
"""

from __future__ import annotations

import os
import sys

from bdp.config import Settings, check_home, make_private
from bdp.config_file import start
from bdp.errors import BdpError
from bdp.queue.app import App


def _app() -> App:
    """The app of this consumer; a setting it cannot use ends the start with one line."""
    make_private()
    try:
        for warning in start(os.environ).warnings:
            print(f"warning: {warning}", file=sys.stderr)
        settings = Settings.from_env()
        check_home(settings.home)
        app = App.create(settings)
        app.huey.serializer.check_key()
        _preflight(settings)
    except BdpError as error:
        print(f"Error: {error}", file=sys.stderr)
        raise SystemExit(error.exit_code or 1) from None
    return app


def _preflight(settings: Settings) -> None:
    """A worker that cannot start a session says why now, before it takes a task."""
    from bdp.run.preflight import require, worker_checks

    for warning in require(worker_checks(settings, os.environ)):
        print(f"warning: {warning.line()}", file=sys.stderr)


app = _app()
huey = app.huey
tasks = app.tasks
