"""What operators point Huey's consumer at; every bdp task is registered on this ``huey``.

    huey_consumer bdp.consumer.huey -w 4 -k thread

Settings come from the ``BDP_*`` environment of the consumer process.
"""

from __future__ import annotations

from bdp.config import Settings
from bdp.queue.app import App

app = App.create(Settings.from_env())
huey = app.huey
tasks = app.tasks
