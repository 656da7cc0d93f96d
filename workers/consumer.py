"""What operators point Huey's consumer at; every bdp task is registered on this ``huey``.

huey_consumer workers.consumer.huey -w 4 -k thread
"""

from __future__ import annotations

import logging

from bdp.app import App
from bdp.config import Settings

logging.getLogger("bdp").setLevel(logging.INFO)

app = App.create(Settings.from_env())
huey = app.huey
tasks = app.tasks
