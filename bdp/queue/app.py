"""The composition root: settings, the Huey instance, its tasks and bdp's state, together.

Tasks are registered on first use, so read-only commands (`bdp status`) never import
`bdp.queue.tasks` or anything behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from huey import Huey

from bdp.agent.session import AgentFactory
from bdp.broker.claims import Claims, claims_for
from bdp.broker.state import State
from bdp.config import Settings
from bdp.queue.instance import build_huey

if TYPE_CHECKING:
    from bdp.queue.tasks import Tasks


@dataclass
class App:
    """Everything a command or a worker process needs, wired once."""

    settings: Settings
    huey: Huey
    state: State
    agent: AgentFactory | None = None  # None: the real Claude agent

    @classmethod
    def create(cls, settings: Settings, agent: AgentFactory | None = None) -> App:
        huey = build_huey(settings)
        return cls(settings, huey, State(huey), agent)

    @cached_property
    def claims(self) -> Claims:
        """The queue's leases and tombstones (in Redis; on SQLite, bd's claim decides)."""
        return claims_for(self.huey.storage, self.huey.name, self.settings.stale_after)

    @cached_property
    def tasks(self) -> Tasks:
        """bdp's tasks, registered on this app's Huey."""
        from bdp.queue.tasks import TaskContext, claude_agent, register_tasks

        context = TaskContext(self.settings, self.huey, self.agent or claude_agent)
        return register_tasks(context)
