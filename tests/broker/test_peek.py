"""Reading queued messages without Huey or the key, as `bdp status` does."""

from __future__ import annotations

from pathlib import Path

from bdp.broker.peek import ISSUE_NEEDLE, ISSUE_TASK, QueuedTask, peek
from bdp.config import Settings
from bdp.models import TaskArgs
from bdp.queue.app import App
from tests.support.secrets import SECRET


def queued_messages(app: App) -> list[bytes]:
    return list(app.huey.storage.enqueued_items())


def test_a_queued_issue_is_read_back_with_its_repo_id_and_attempt(tmp_path: Path) -> None:
    # Given an issue task as bdp queues it, signed with the queue's key
    app = App.create(Settings(home=tmp_path / "home", secret=SECRET))
    app.huey.enqueue(app.tasks.queue(TaskArgs("/src/acme", "acme-k3x", attempt=2)))

    # When status peeks at the message
    [task] = [peek(message) for message in queued_messages(app)]

    # Then it names the task and the issue, without checking the signature
    assert task == QueuedTask(ISSUE_TASK, "/src/acme", "acme-k3x", 2)
    assert task.works_an_issue
    assert task.to_json() == {"issue_id": "acme-k3x", "repo": "/src/acme", "attempt": 2}


def test_the_janitor_on_the_queue_is_a_task_that_works_no_issue(tmp_path: Path) -> None:
    app = App.create(Settings(home=tmp_path / "home", secret=SECRET))
    app.huey.enqueue(app.tasks.janitor.s())

    [task] = [peek(message) for message in queued_messages(app)]

    assert task.name == "bdp.tasks.janitor"
    assert not task.works_an_issue


def test_a_message_bdp_did_not_write_is_no_task() -> None:
    for junk in (b"\x80\x04pickle", b"bdp1.abc.not json", b'bdp1.abc.{"x": 1}', "bdp1.a.[1]"):
        assert peek(junk) == QueuedTask("")
        assert not peek(junk).works_an_issue


def test_an_issue_message_spells_the_task_name_as_the_broker_searches_for_it(
    tmp_path: Path,
) -> None:
    # Given an issue task whose own payload mentions the task's name, and a janitor task
    app = App.create(Settings(home=tmp_path / "home", secret=SECRET))
    tricky = TaskArgs("/src/acme", "t-1", prior=f'"name":"{ISSUE_TASK}" in a string')
    app.huey.enqueue(app.tasks.queue(tricky))
    app.huey.enqueue(app.tasks.janitor.s())

    # Then the needle appears exactly once in the issue's message and never in the janitor's
    issue, janitor = sorted(queued_messages(app), key=len, reverse=True)
    assert issue.count(ISSUE_NEEDLE) == 1
    assert ISSUE_NEEDLE not in janitor
