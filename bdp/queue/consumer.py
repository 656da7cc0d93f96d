"""Huey's consumer, taught seven things bdp needs.

1. The periodic janitor runs every ``BDP_JANITOR_INTERVAL`` seconds (Huey's scheduler checks
   periodic tasks once a minute, which is too coarse for tests and small setups), and it runs
   beside the scheduler, one sweep at a time, never on the queue. On the queue it would wait
   behind the sessions whenever every worker is busy (dead runs found only once a session
   ends) and pile up one task per interval per consumer: a busy worker of a test consumer
   left 19 sweeps queued in 40 s.
2. Shutdown reaches running sessions: a signal sets `bdp.run.shutdown`, and an immediate stop
   waits (bounded) for the workers to reset their issues and free their locks before the
   process exits, instead of dropping them mid-task.
3. Idle workers poll a SQLite queue at least once a second (measured with
   bench/parallel.py: a first pickup after a minute of quiet took 6.5 s, 0.5 s with the cap).
4. While the queue is held (a spent budget, a usage-limit pause) workers take no task: the
   tasks wait in the queue untouched. Cycling 10,000 held tasks through the workers cost 40%
   of a core; holding them, 0.5%.
5. Forked workers and the scheduler end when the consumer dies without stopping them
   (SIGKILL): left alone, they would keep taking tasks for good.
6. While Redis is away, each retry logs one line that says so, not a traceback.
7. At start it names the allowed tools (``BDP_ALLOWED_TOOLS``) the Claude CLI does not offer.
8. It says who it is: one start line (host, pid, workers, broker, janitor interval), a
   heartbeat record in the broker while it runs (`bdp status` lists consumers from it), and
   bdp's own log lines (one per finished run) in the same log as Huey's.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from huey import Huey
from huey.consumer import Consumer, Scheduler, Worker
from huey.storage import RedisStorage
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bdp.broker.persistence import VOLATILE_WARNING, redis_persistence
from bdp.broker.state import State
from bdp.config import Settings, unknown_tools
from bdp.queue.consumer_beat import Heartbeat
from bdp.queue.hold_check import HoldCheck
from bdp.redact import redact_logs
from bdp.run import shutdown

log = logging.getLogger(__name__)

#: Seconds an immediate stop waits for workers to clean up (reset issue, free locks).
CLEANUP_WINDOW = 20.0
#: Longest idle poll interval on a broker that cannot block (SQLite): Huey's default backs
#: off to 10 s, which delays the first task after a quiet spell by up to that long.
IDLE_POLL_CAP = 1.0
#: Seconds a held worker waits before looking at the hold again.
HELD_WAIT = 1.0


def _exit_if_orphaned(parent: int | None) -> None:
    """End a forked worker or scheduler whose consumer died (SIGKILL, OOM): nothing else would.

    Its stop flag lives in the dead parent, and a SIGTERM reaches only a running task; so
    each loop checks its parent. A task in flight finishes first: the check runs between loops.
    """
    if parent is not None and os.getppid() != parent:
        raise KeyboardInterrupt  # Huey's process loop exits quietly on it


class _HeldWorker(Worker):  # type: ignore[misc]
    """A worker that takes no task while the queue is held."""

    hold: HoldCheck
    parent: int | None = None  # the consumer's pid, for a forked worker

    def loop(self, now: Any = None) -> None:
        _exit_if_orphaned(self.parent)
        if self._held():
            self.stop_flag.wait(HELD_WAIT)
            return
        super().loop(now)

    def _held(self) -> bool:
        """True while the queue is held; False when the broker cannot say (the dequeue that
        follows finds it away too, says so in one line, and backs off)."""
        try:
            return self.hold.check()[0] is not None
        except (RedisConnectionError, RedisTimeoutError):
            return False


class _BesideScheduler(Scheduler):  # type: ignore[misc]
    """A scheduler that runs periodic tasks (the janitor) itself, beside its loop."""

    parent: int | None = None  # the consumer's pid, for a forked scheduler
    beside: Beside

    def loop(self, now: Any = None) -> Any:
        _exit_if_orphaned(self.parent)
        return super().loop(now)

    def enqueue_periodic_tasks(self, now: Any) -> None:
        for task in self.huey.read_periodic(now):
            self.beside.start(task)


class Beside:
    """Runs one periodic task at a time on a thread of its own.

    A check that comes while the last sweep still runs is skipped: the running one finds what
    the skipped one would have.
    """

    def __init__(self, huey: Huey) -> None:
        self.huey = huey
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, task: Any) -> bool:
        """Start ``task`` unless one is still running; True when it started."""
        if not self._busy.acquire(blocking=False):
            log.debug("periodic %s skipped: the last one still runs", task)
            return False
        self._thread = threading.Thread(target=self._run, args=(task,), name="bdp-janitor")
        self._thread.daemon = True  # a sweep cut off by the process's end is safe to redo
        self._thread.start()
        return True

    def join(self, timeout: float | None = None) -> None:
        """Wait for the running task, if any."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, task: Any) -> None:
        try:
            self.huey.execute(task)
        except Exception:
            log.exception("periodic task %s failed", task)
        finally:
            self._busy.release()


class _BrokerAwayLine(logging.Filter):
    """Turns Huey's traceback for a broker it cannot reach (logged at every retry of every
    worker, the scheduler and the janitor) into one warning line that names the cause."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, RedisConnectionError | RedisTimeoutError):
            record.msg = f"{record.getMessage()}: cannot reach Redis ({error}); retrying"
            record.args = ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_BROKER_AWAY = _BrokerAwayLine()
#: The loggers that report a failed read of the queue, the schedule or a periodic task, a
#: run's heartbeat (its watchdog) or a janitor step: each retries on its own.
_BROKER_LOGGERS = (
    "huey",
    "huey.consumer",
    "huey.consumer.Worker",
    "huey.consumer.Scheduler",
    "bdp.run.watchdog",
    "bdp.queue.janitor",
    __name__,
)


def _warn_of_unknown_tools(settings: Settings) -> None:
    """Say at start which allowed tools the Claude CLI does not offer: a typo, or a tool an
    older CLI had, is not available to any agent, and nothing else would say so."""
    unknown = unknown_tools(settings.allowed_tools)
    if unknown:
        log.warning(
            "bdp: BDP_ALLOWED_TOOLS names tools the Claude CLI does not offer: %s",
            ", ".join(unknown),
        )


def _share_hueys_log() -> None:
    """Send bdp's log records where Huey's go (``huey_consumer`` configures only the "huey"
    logger): without it, a run's outcome line would never reach the consumer's log."""
    huey_log, bdp_log = logging.getLogger("huey"), logging.getLogger("bdp")
    if huey_log.handlers and not bdp_log.handlers:
        for handler in huey_log.handlers:
            bdp_log.addHandler(handler)
        if bdp_log.level == logging.NOTSET:
            bdp_log.setLevel(huey_log.getEffectiveLevel())


def _warn_if_volatile(huey: Huey) -> None:
    """Say loudly, at start, when the Redis broker would lose the queue on a restart."""
    if isinstance(huey.storage, RedisStorage) and redis_persistence(huey.storage.conn) == "none":
        log.warning("bdp: %s", VOLATILE_WARNING)


class BdpConsumer(Consumer):  # type: ignore[misc]
    """A Huey consumer whose periodic interval, idle polling, holds and shutdown are bdp's."""

    worker_class = _HeldWorker
    scheduler_class = _BesideScheduler

    def __init__(self, huey: Huey, settings: Settings, **options: Any) -> None:
        self.periodic_seconds = settings.janitor_interval
        self.wrapup = settings.wrapup
        if not getattr(huey.storage, "blocking", False):  # Redis blocks on its queue; SQLite polls
            options["max_delay"] = min(float(options.get("max_delay", 10.0)), IDLE_POLL_CAP)
        huey.serializer.check_key()  # a missing or weak BDP_SECRET stops the start, not a task
        self.hold = HoldCheck(State(huey), settings)
        super().__init__(huey, **options)
        shutdown.reset()
        shutdown.watch(self.stop_flag)
        for name in _BROKER_LOGGERS:
            logging.getLogger(name).addFilter(_BROKER_AWAY)
        redact_logs("huey")
        _share_hueys_log()
        _warn_of_unknown_tools(settings)
        _warn_if_volatile(huey)
        self.settings = settings
        self.heartbeat = Heartbeat.here(
            huey, self.workers, self.worker_type, settings.heartbeat, settings.stale_after
        )

    def start(self) -> None:
        super().start()
        log.info("bdp: %s", self.start_line())
        self.heartbeat.start()

    def stop(self, graceful: bool = False) -> None:
        try:
            super().stop(graceful)
        finally:
            self.heartbeat.stop()

    def start_line(self) -> str:
        """Who this consumer is, in one line: host, pid, workers, broker, janitor interval."""
        me = self.heartbeat.record
        periodic = f"every {self.periodic_seconds:g}s" if self.periodic else "off"
        return (
            f"consumer started on {me.host}, pid {me.pid}: {self.workers} {self.worker_type} "
            f"workers, broker {self.settings.broker_label}, janitor {periodic}"
        )

    def _create_scheduler(self) -> Scheduler:
        scheduler = super()._create_scheduler()
        scheduler.periodic_task_seconds = self.periodic_seconds
        scheduler.beside = Beside(self.huey)
        scheduler.parent = self._forking_parent()
        return scheduler

    def _create_worker(self) -> Worker:
        worker = super()._create_worker()
        worker.hold = self.hold
        worker.parent = self._forking_parent()
        return worker

    def _forking_parent(self) -> int | None:
        """This process's pid when workers are forked from it (None for threads)."""
        return os.getpid() if self.environment.forks else None

    def _handle_signal(self, signum: int, frame: Any) -> None:
        super()._handle_signal(signum, frame)
        shutdown.request("graceful" if self._graceful else "immediate")
        if self._graceful and signum == self._graceful_sig:
            log.warning(
                "bdp: wrapping up %d sessions for up to %gs (Ctrl-C again to stop now)",
                self._sessions_here(),
                self.wrapup,
            )
            signal.signal(signum, self._second_signal)

    def _second_signal(self, signum: int, frame: Any) -> None:
        """A second Ctrl-C: stop the sessions now (they still reset their issues)."""
        shutdown.request("immediate")
        log.warning("bdp: stopping the sessions now")
        signal.default_int_handler(signum, frame)  # Huey's own second-signal behaviour

    def _sessions_here(self) -> int:
        try:
            return sum(1 for run in State(self.huey).runs() if run.pid == os.getpid())
        except Exception:  # the broker is away: the count is only for the message
            return 0

    def _interrupt_workers(self) -> None:
        """Stop now, but give running tasks a bounded window to clean up first."""
        shutdown.request("immediate")
        procs = [p for _, p in self.worker_threads]
        if self.environment.forks:
            self.environment.interrupt_workers(procs)
        deadline = time.monotonic() + CLEANUP_WINDOW
        for proc in procs:
            proc.join(max(deadline - time.monotonic(), 0))
