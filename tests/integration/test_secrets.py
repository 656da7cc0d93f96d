"""No secret reaches anything bdp writes or prints, whatever an agent or a gate does with it.

One issue runs end to end on real consumers and a password-protected Redis (its URL in both
forms bdp accepts). Its agent prints its environment plain and base64-encoded, files a
follow-up that quotes the API key, and ends with a summary holding every secret and their
base64 forms; the repo's gate prints its environment. Then every surface is read back.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import redis

from tests.conftest import git
from tests.integration.helpers import bdp, marker
from tests.support.beads import create_issue, run_bd_ok, show_issue
from tests.support.fake_api import FakeApi, Text, ToolUse
from tests.support.processes import HueyConsumer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def url_of(redis_url: str, form: str) -> tuple[str, str]:
    """The session Redis's URL in ``form``, and its password."""
    password = redis_url.split(":")[2].split("@")[0]
    host = redis_url.split("@")[1]
    if form == "userinfo":
        return redis_url, password
    host_port, _, db = host.partition("/")
    return f"redis://{host_port}/{db}?password={password}", password


def script_the_leaky_agent(api: FakeApi, issue_id: str, secrets: list[str]) -> None:
    api.script(
        [
            ToolUse("Bash", {"command": "env; env | base64 -w0; echo"}),
            ToolUse(
                "mcp__bdp__file_issue",
                {"title": f"Rotate {secrets[0]}", "description": " ".join(secrets)},
            ),
            ToolUse("Write", {"file_path": "leak.txt", "content": "done\n"}),
            Text("DONE: " + " / ".join(secrets)),
            ToolUse("Write", {"file_path": "fixed.txt", "content": "what the gate wants\n"}),
            Text("DONE: again, after the gate: " + " / ".join(secrets)),
        ],
        match=marker(issue_id),
    )


def surfaces(env: dict[str, str], repo: Path, issue_id: str, tmp_path: Path) -> dict[str, str]:
    """Everything bdp wrote or prints about the run, by where it is."""
    home, url = Path(env["BDP_HOME"]), env["BDP_REDIS_URL"]
    client = redis.Redis.from_url(url)
    stored = {key.decode(errors="replace"): repr(client.dump(key)) for key in client.scan_iter("*")}
    return {
        "bd close reason": json.dumps(show_issue(repo, issue_id)),
        "bd comments": run_bd_ok(repo, "comments", issue_id, "--json"),
        "bd follow-up": run_bd_ok(repo, "list", "--json", "--all"),
        "status": bdp(env, "status").stdout + bdp(env, "status").stderr,
        "status --json": bdp(env, "status", "--json").stdout,
        "logs": bdp(env, "logs", "--agent", issue_id).stdout,
        "logs --json": bdp(env, "logs", "--agent", issue_id, "--json").stdout,
        "log files": "".join(p.read_text() for p in (home / "logs").rglob("*") if p.is_file()),
        "notifications": "".join(p.read_text() for p in (tmp_path / "inbox").iterdir()),
        "broker": json.dumps(stored),
        "consumer": (tmp_path / "consumer.log").read_text(),
    }


@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_no_secret_in_any_form_reaches_any_surface(
    env: dict[str, str], redis_url: str, repo: Path, fake_api: FakeApi, tmp_path: Path, form: str
) -> None:
    # Given a Redis password in the URL, the API key, and a gate that prints its environment
    url, password = url_of(redis_url, form)
    api_key = env["ANTHROPIC_API_KEY"]
    secrets = [api_key, b64(api_key), password, b64(password)]
    gate = "env; env | base64 -w0; test -e fixed.txt"  # fails until the agent's fix round
    (repo / ".bdp.toml").write_text(f"gate = [{json.dumps(gate)}]\n")
    git(repo, "add", ".bdp.toml")
    git(repo, "commit", "-qm", "a gate that prints its environment")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    leaky = {
        **env,
        "BDP_REDIS_URL": url,
        "BDP_NOTIFY": f'cat > "$(mktemp {inbox}/event.XXXXXX)"; echo "$BDP_SUMMARY" >> {inbox}/env',
    }
    issue_id = create_issue(repo, "Leak everything")
    script_the_leaky_agent(fake_api, issue_id, secrets)

    # When the issue runs to its close
    assert bdp(leaky, "enqueue", str(repo)).returncode == 0
    consumer = HueyConsumer(leaky, tmp_path / "consumer.log").start()
    try:
        wait_for(lambda: show_issue(repo, issue_id)["status"] == "closed", timeout=120)
        wait_for(lambda: len(list(inbox.iterdir())) >= 2, timeout=30)
    finally:
        consumer.stop()

    # Then no surface holds any secret, in the clear or base64
    seen = surfaces(leaky, repo, issue_id, tmp_path)
    assert "quality gate failed: env;" in seen["logs"]  # and its output's tail is in the log
    assert "***" in seen["bd close reason"]  # the summary was there, redacted
    assert "Rotate ***" in seen["bd follow-up"]
    for name, text in seen.items():
        for secret in secrets:
            assert secret not in text, f"{name} holds a secret"
