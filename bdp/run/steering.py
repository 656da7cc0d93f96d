"""`bdp say` and `bdp stop`: a person steering a running run, from any machine on the broker.

The sender puts a `Steer` in the run's inbox (`bdp.broker.inbox`). The run's own watchdog
looks at the inbox every few seconds (`InboxReader.check`, one broker read when nothing came)
and obeys: a message goes to the session (`Steering`), which passes it on after the agent's
next tool call or turn; a stop sets the run's StopSignal, so the run ends INTERRUPTED through
the usual finish: issue reset with a comment, locks freed, and queued again when asked.
"""

from __future__ import annotations

import getpass
import logging
from dataclasses import dataclass

from bdp.agent.session import Steering, StopSignal
from bdp.agent.transcript import Transcript
from bdp.broker.inbox import INBOX_SLOTS, Steer
from bdp.broker.state import State
from bdp.errors import BdpError
from bdp.host import host_name
from bdp.models import Outcome, Run
from bdp.redact import scrub

log = logging.getLogger(__name__)
#: Longest message `bdp say` sends, in characters: a steer, not a new specification.
MAX_MESSAGE = 4000
#: What to do with a longer or a later message instead.
NOTES_HINT = "put longer or lasting guidance in the issue: bd update ISSUE --notes '...'"


def sender() -> str:
    """Who is steering, as the transcript and the bd comment name them: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment or the password database
        user = "someone"
    return f"{user}@{host_name()}"


def say(state: State, issue_id: str, text: str) -> list[Run]:
    """Send ``text`` to the session of each run of ``issue_id``; the runs it went to.

    Raises:
        BdpError: the message is empty or too long, or no run of the issue is running.
    """
    text = text.strip()
    if not text:
        raise BdpError(
            "the message is empty", f'say what the agent should know: bdp say {issue_id} "..."'
        )
    if len(text) > MAX_MESSAGE:
        raise BdpError(
            f"the message has {len(text):,} characters, more than {MAX_MESSAGE:,}", NOTES_HINT
        )
    return _send(state, issue_id, Steer("say", sender(), scrub(text)))


def request_stop(state: State, issue_id: str, requeue: bool = False) -> list[Run]:
    """Ask each run of ``issue_id`` to stop; the runs asked.

    Raises:
        BdpError: no run of the issue is running.
    """
    return _send(state, issue_id, Steer("stop", sender(), requeue=requeue))


def _send(state: State, issue_id: str, steer: Steer) -> list[Run]:
    runs = [run for run in state.runs() if run.issue_id == issue_id]
    sent = [run for run in runs if _post(state, run, steer)]
    if not sent:
        raise BdpError(
            f"no run of {issue_id} is running",
            f"`bdp status` lists the running agents; {NOTES_HINT}",
        )
    return sent


def _post(state: State, run: Run, steer: Steer) -> bool:
    """Post to the run's inbox; False (and taken back) when the run ended meanwhile."""
    slot = state.inbox.post(run.run_id, steer)
    if slot is None:
        raise BdpError(
            f"run {run.run_id} of {run.issue_id} has {INBOX_SLOTS} requests already", NOTES_HINT
        )
    if state.has_run(run.run_id):
        return True
    state.inbox.withdraw(run.run_id, slot)  # it may have been cleared already: nobody reads it
    return False


@dataclass
class InboxReader:
    """A run's side of its inbox: each request read once, in order, and obeyed."""

    state: State
    run_id: str
    stop: StopSignal
    steering: Steering
    transcript: Transcript
    next_slot: int = 1

    def check(self) -> None:
        """Obey what came since the last look: a single read of one key when nothing did."""
        while (steer := self.state.inbox.read(self.run_id, self.next_slot)) is not None:
            self.next_slot += 1
            self._obey(steer)

    def _obey(self, steer: Steer) -> None:
        if steer.kind == "stop":
            again = ", and to queue the issue again" if steer.requeue else ""
            self.transcript.line(f"bdp: {steer.sender} asked to stop this run{again} (bdp stop)")
            reason = f"stopped by {steer.sender} with bdp stop"
            self.stop.stop(Outcome.INTERRUPTED, reason, requeue=steer.requeue)
        elif steer.kind == "say":
            self.transcript.line(f"bdp: message from {steer.sender} (bdp say): {steer.text}")
            self.steering.post(steer.sender, steer.text)
        else:
            log.warning("run %s ignores a %r request (from a newer bdp?)", self.run_id, steer.kind)

    def close(self) -> None:
        """Say in the transcript when a message came too late for the session to pass on."""
        if self.steering.take():
            self.transcript.line("bdp: the session ended before the agent was given the message")
