"""bdp.broker.messages: task messages are signed JSON, and nothing else on the queue runs.

The attack is real: a pickle whose loading runs a shell command. The tests show it does run
when unpickled, then put it on a real Redis list and a real SQLite queue and show a real
`huey_consumer` drops it without running it, and goes on working.
"""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import pytest

from bdp.broker.messages import KEY_FILE, BadMessage, SignedJson, task_key
from bdp.config import Settings
from bdp.errors import ConfigError
from bdp.models import TaskArgs
from bdp.queue.app import App
from tests.support.processes import HueyConsumer, wait_for
from tests.support.secrets import SECRET


class Exploit:
    """Unpickling this runs ``touch <path>``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


def app_on(settings: Settings) -> App:
    app = App.create(settings)
    _ = app.tasks  # registered, so messages can be read back into tasks
    return app


def test_a_task_goes_through_the_queue_as_signed_json(tmp_path: Path) -> None:
    app = app_on(Settings(home=tmp_path / "home", secret=SECRET))
    args = TaskArgs("/repo", "t-1", 2, max_cost=1.5)

    app.tasks.run_issue(args.to_task())

    raw = app.huey.storage.enqueued_items()[0]
    assert raw.startswith(b"bdp1.")
    assert b'"t-1"' in raw  # readable JSON, not a pickle
    [task] = app.huey.pending()
    assert TaskArgs.from_task(*task.args) == args


def test_a_message_signed_with_another_key_or_altered_is_refused(tmp_path: Path) -> None:
    ours = SignedJson(lambda: SECRET.encode())
    theirs = SignedJson(lambda: b"another-key-0123456789")
    message = ours.serialize({"args": ["t-1"]})

    assert ours.deserialize(message) == {"args": ["t-1"]}
    with pytest.raises(BadMessage, match="signature"):
        ours.deserialize(theirs.serialize({"args": ["t-1"]}))
    with pytest.raises(BadMessage, match="signature"):
        ours.deserialize(message.replace(b"t-1", b"t-2"))
    with pytest.raises(BadMessage, match="not signed"):
        ours.deserialize(pickle.dumps({"args": ["t-1"]}))


def test_the_local_queue_gets_a_private_key_made_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")

    first, again = task_key(settings), task_key(settings)

    assert first == again
    assert len(first) == 64
    mode = stat.S_IMODE((tmp_path / "home" / KEY_FILE).stat().st_mode)
    assert mode == 0o600


def test_a_redis_other_machines_may_share_needs_a_shared_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="BDP_SECRET is not") as missing:
        task_key(Settings(home=tmp_path, redis_url="redis://queue-host:6379/0"))
    assert "openssl rand" in str(missing.value)
    with pytest.raises(ConfigError, match="shorter than 16"):
        task_key(Settings(home=tmp_path, redis_url="redis://queue-host:6379/0", secret="short"))


def test_a_redis_on_this_machines_loopback_uses_the_local_key(tmp_path: Path) -> None:
    local = Settings(home=tmp_path / "home", redis_url="redis://127.0.0.1:6380/0")

    assert task_key(local) == task_key(Settings(home=tmp_path / "home"))


def test_the_exploit_is_live_under_plain_pickle(tmp_path: Path) -> None:
    # (so the tests below, where it does not run, show something)
    pickle.loads(pickle.dumps(Exploit(tmp_path / "ran")))  # noqa: S301 - the point

    assert (tmp_path / "ran").exists()


@pytest.mark.integration
@pytest.mark.parametrize("broker", ["redis", "sqlite"])
def test_a_pickle_on_the_queue_is_dropped_unread_by_a_real_consumer(
    env: dict[str, str], redis_url: str, tmp_path: Path, broker: str
) -> None:
    # Given a crafted pickle written straight onto the queue, ahead of bdp's own sweep
    worker_env = {**env, "BDP_REDIS_URL": redis_url} if broker == "redis" else env
    app = app_on(Settings.from_env(worker_env))
    ran = tmp_path / "pwned"
    app.huey.storage.enqueue(pickle.dumps(Exploit(ran)), 0)
    assert app.huey.pending_count() == 1

    # When a consumer reads the queue
    consumer = HueyConsumer(worker_env, tmp_path / "consumer.log").start()
    try:
        wait_for(lambda: "dropped a message on the queue" in consumer.output(), timeout=30)
        wait_for(lambda: app.huey.pending_count() == 0, timeout=10)
    finally:
        consumer.stop()

    # Then it was dropped with one line that shows none of it, and nothing ran
    assert not ran.exists()
    line = next(x for x in consumer.output().splitlines() if "dropped a message" in x)
    assert "not signed by bdp" in line
    assert "touch" not in consumer.output()
    assert "Traceback" not in consumer.output()
