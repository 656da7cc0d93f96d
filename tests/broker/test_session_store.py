"""Session transcripts in Redis: on a real redis-server, and with the real Claude CLI
resuming on "another machine" (another working directory and config dir) from the store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import redis
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ResultMessage

from bdp.broker.session_store import KEPT, RedisSessionStore
from bdp.redact import Redactor
from tests.support.fake_api import FakeApi, Text, ToolUse, cli_env

PREFIX = "bdp.bdp"
SESSION = "5b0e3a4c-0000-4000-8000-000000000001"


def store(url: str, secrets: tuple[str, ...] = ()) -> RedisSessionStore:
    return RedisSessionStore(redis.Redis.from_url(url), PREFIX, Redactor(secrets).tree)


def key(project: str, session: str = SESSION) -> dict[str, Any]:
    return {"project_key": project, "session_id": session}


def test_a_session_is_kept_by_its_id_whatever_project_wrote_it(redis_url: str) -> None:
    sessions = store(redis_url)
    first = [{"uuid": "u1", "type": "user"}, {"uuid": "u2", "type": "assistant"}]

    asyncio.run(sessions.append(key("-srv-app"), first))
    asyncio.run(sessions.append(key("-home-ci-app-worktree"), [{"uuid": "u3", "type": "user"}]))

    loaded = asyncio.run(sessions.load(key("-anywhere")))
    assert [entry["uuid"] for entry in loaded or []] == ["u1", "u2", "u3"]
    assert sessions.has(SESSION)
    assert not sessions.has("5b0e3a4c-0000-4000-8000-000000000002")
    assert asyncio.run(sessions.load(key("-srv-app", "another"))) is None


def test_a_batch_sent_again_is_stored_once_and_entries_without_a_uuid_always(
    redis_url: str,
) -> None:
    sessions = store(redis_url)
    batch = [{"uuid": "u1", "type": "user"}, {"type": "title", "title": "x"}]

    asyncio.run(sessions.append(key("p"), batch))
    asyncio.run(sessions.append(key("p"), batch))  # the SDK retries a batch it thinks failed

    loaded = asyncio.run(sessions.load(key("p"))) or []
    assert [entry.get("uuid", entry["type"]) for entry in loaded] == ["u1", "title", "title"]


def test_entries_are_stored_without_secrets_and_expire(redis_url: str) -> None:
    secret = "sk-very-secret-value-123"
    sessions = store(redis_url, (secret,))
    entry = {"uuid": "u1", "message": {"content": [{"text": f"the key is {secret}"}]}}

    asyncio.run(sessions.append(key("p"), [entry]))

    client = redis.Redis.from_url(redis_url)
    stored: list[Any] = client.lrange(f"{PREFIX}.session:{SESSION}", 0, -1)
    raw = b"".join(stored)
    assert secret.encode() not in raw
    assert b"the key is ***" in raw
    assert 0 < client.ttl(f"{PREFIX}.session:{SESSION}") <= KEPT


async def _session(api: FakeApi, cwd: Path, sessions: RedisSessionStore, resume: str = "") -> str:
    env = cli_env(api.url, cwd.parent / f"{cwd.name}-config")
    options = ClaudeAgentOptions(
        cwd=str(cwd),
        env=env,
        permission_mode="acceptEdits",
        tools=["Write"],
        allowed_tools=["Write"],
        session_store=cast(Any, sessions),  # append and load: the SDK probes for the rest
        resume=resume or None,
    )
    async with ClaudeSDKClient(options) as client:
        await client.query("go on" if resume else "write a.txt")
        async for message in client.receive_response():
            if isinstance(message, ResultMessage):
                return message.session_id
    raise AssertionError("the session ended without a result")


def test_the_real_cli_resumes_on_another_machine_from_the_store(
    redis_url: str, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given a session on "alpha" (its own directory and CLI config) mirrored to Redis
    fake_api.script([ToolUse("Write", {"file_path": "a.txt", "content": "hi\n"}), Text("wrote")])
    alpha, beta = tmp_path / "alpha", tmp_path / "beta"
    alpha.mkdir()
    beta.mkdir()
    session_id = asyncio.run(_session(fake_api, alpha, store(redis_url)))
    first = len(fake_api.messages_requests())

    # When "beta", with nothing of it on disk, resumes it from the store
    resumed = asyncio.run(_session(fake_api, beta, store(redis_url), resume=session_id))

    # Then it is the same session, and the model sees the whole earlier conversation
    assert resumed == session_id
    [request] = fake_api.messages_requests()[first:]
    texts = str(request.body["messages"])
    assert "write a.txt" in texts
    assert "toolu_" in texts  # the Write and its result from alpha's turns
    assert "go on" in texts
