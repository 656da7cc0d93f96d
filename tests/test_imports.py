"""Fast paths stay light: which modules a command loads, checked in a fresh interpreter.

Each probe runs in its own ``python -c`` so modules imported by other tests cannot hide an
import; it writes the loaded bdp/SDK/worker module names to a file as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.beads import create_issue

SDK = "claude_agent_sdk"
#: The modules that import the SDK (only bdp.agent's), and the tasks that lead to them.
SDK_USERS = {"bdp.agent.claude", "bdp.agent.conversation", "bdp.agent.hooks", "bdp.agent.review"}
HEAVY = {SDK, "bdp.queue.tasks", *SDK_USERS}
#: redis-py's asynchronous stack, which its package imports and bdp never uses
#: (`bdp.deferred` keeps it out until something does).
ASYNC_REDIS = {"redis.asyncio.client", "redis.asyncio.connection", "redis.asyncio.cluster"}

#: What a command on Redis has no use for: redis-py's version lookup (importlib.metadata,
#: with importlib.resources and email under it), the SQLite driver, rich's emoji table.
NOT_ON_REDIS = {
    "importlib.metadata",
    "importlib.resources",
    "email",
    "sqlite3",
    "rich._emoji_codes",
}

#: Runs ``bdp`` once per argument list in argv[2] (JSON), then writes the loaded modules
#: (a module `bdp.deferred` registered but nothing has used yet is not loaded).
CLI_PROBE = """
import json, sys
from pathlib import Path
from bdp.cli import main
for args in json.loads(sys.argv[2]):
    code = main(args, standalone_mode=False)
    assert code in (None, 0), (args, code)
loaded = [n for n, m in sys.modules.items() if type(m).__name__ != "_Placeholder"]
Path(sys.argv[1]).write_text(json.dumps(sorted(loaded)))
"""

#: Imports the consumer module, records the modules, then runs the startup hooks the way
#: huey's consumer does (huey/consumer.py: ``for name, hook in huey._startup.items()``).
CONSUMER_PROBE = """
import json, sys
from pathlib import Path
import bdp.consumer
imported = sorted(sys.modules)
for hook in bdp.consumer.huey._startup.values():
    hook()
started = sorted(sys.modules)
Path(sys.argv[1]).write_text(json.dumps({"imported": imported, "started": started}))
"""


def probe(tmp_path: Path, env: dict[str, str], script: str, *args: str) -> object:
    """Run ``script`` in a fresh interpreter and return the JSON it wrote."""
    out = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", script, str(out), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: object = json.loads(out.read_text())
    return result


def loaded_by(tmp_path: Path, env: dict[str, str], *commands: list[str]) -> set[str]:
    modules = probe(tmp_path, env, CLI_PROBE, json.dumps(list(commands)))
    assert isinstance(modules, list)
    return {str(name) for name in modules}


def test_help_and_status_never_load_the_sdk_tasks_or_agent(
    tmp_path: Path, env: dict[str, str]
) -> None:
    modules = loaded_by(tmp_path, env, ["--help"], ["status"])
    assert "bdp.ops.status" in modules  # the probe really ran `bdp status`
    assert not modules & HEAVY
    assert not modules & {"bdp.ops.notify", "urllib.request"}  # the notifier is the workers' part


def test_enqueue_dry_run_never_loads_the_sdk_or_agent(
    tmp_path: Path, env: dict[str, str], repo: Path
) -> None:
    create_issue(repo, "Something to enqueue")
    modules = loaded_by(tmp_path, env, ["enqueue", "--dry-run", str(repo)])
    assert "bdp.queue.enqueue" in modules  # the probe really ran `bdp enqueue`
    assert not modules & {SDK, *SDK_USERS}


def test_enqueue_queues_a_task_without_loading_the_sdk_or_agent(
    tmp_path: Path, env: dict[str, str], repo: Path
) -> None:
    create_issue(repo, "Something to enqueue")
    modules = loaded_by(tmp_path, env, ["enqueue", str(repo)])
    assert "bdp.queue.tasks" in modules  # queuing needs the task, so this path is not vacuous
    assert not modules & {SDK, *SDK_USERS}


def test_the_consumer_module_loads_the_sdk_only_when_a_worker_starts(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # Given a fresh interpreter importing the module operators point huey_consumer at
    result = probe(tmp_path, env, CONSUMER_PROBE)
    assert isinstance(result, dict)
    # Then importing it registers the tasks but leaves the SDK alone
    assert "bdp.queue.tasks" in result["imported"]
    assert SDK not in result["imported"]
    assert not set(result["imported"]) & SDK_USERS
    # And starting a worker is what loads it
    assert SDK in result["started"]


def test_help_and_status_never_load_the_report_and_report_never_loads_the_sdk(
    tmp_path: Path, env: dict[str, str]
) -> None:
    drawing = {"bdp.ops.report", "bdp.ops.report_svg", "bdp.ops.report_html", "bdp.cli.report_view"}
    assert not loaded_by(tmp_path, env, ["--help"], ["status"]) & drawing
    modules = loaded_by(tmp_path, env, ["report", "--html", str(tmp_path / "r.html")])
    assert drawing <= modules  # the probe really drew the report, text and HTML
    assert not modules & {SDK, *SDK_USERS, "bdp.queue.tasks"}


def test_status_and_metrics_on_redis_load_only_redis_pys_synchronous_client(
    tmp_path: Path, env: dict[str, str], redis_url: str
) -> None:
    modules = loaded_by(tmp_path, {**env, "BDP_REDIS_URL": redis_url}, ["status"], ["metrics"])
    assert "redis.client" in modules  # the probe really read Redis
    assert not modules & ASYNC_REDIS


def test_status_on_redis_loads_no_version_lookup_sqlite_or_emoji_table(
    tmp_path: Path, env: dict[str, str], redis_url: str
) -> None:
    modules = loaded_by(tmp_path, {**env, "BDP_REDIS_URL": redis_url}, ["status"], ["metrics"])
    assert {"redis.client", "rich.console", "bdp.cli.status_view"} <= modules  # it drew
    assert not modules & NOT_ON_REDIS


def test_metrics_reads_the_broker_without_huey_or_the_prometheus_client(
    tmp_path: Path, env: dict[str, str]
) -> None:
    modules = loaded_by(tmp_path, env, ["metrics"])
    assert "bdp.ops.metrics" in modules  # the probe really ran `bdp metrics`
    assert not modules & {"huey", "prometheus_client", "bdp.queue.app", *HEAVY}


#: Uses redis-py's asyncio client in a fresh interpreter that has imported bdp first.
DEFERRED_PROBE = """
import json, sys
from pathlib import Path
import bdp, redis
before = "redis.asyncio.client" in sys.modules
from redis.asyncio import Redis
client = redis.asyncio.from_url("redis://127.0.0.1:1/0")
Path(sys.argv[1]).write_text(json.dumps([before, Redis.__module__, type(client).__name__]))
"""


def test_the_deferred_asyncio_client_still_works_when_something_uses_it(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # Given bdp imported first, redis-py's asyncio client is not loaded; using it loads it
    found = probe(tmp_path, env, DEFERRED_PROBE)
    assert found == [False, "redis.asyncio.client", "Redis"]


#: Uses importlib.metadata in a fresh interpreter that has imported bdp (and redis-py) first.
DEFERRED_METADATA_PROBE = """
import json, sys
from pathlib import Path
import bdp, redis, importlib
before = type(sys.modules["importlib.metadata"]).__name__
from importlib.metadata import version
import importlib.metadata as metadata
found = [before, version("redis") == redis.__version__, importlib.metadata is metadata]
found.append(type(sys.modules["importlib.metadata"]).__name__)
Path(sys.argv[1]).write_text(json.dumps(found))
"""


def test_the_deferred_importlib_metadata_works_when_something_uses_it(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # Given bdp and redis-py imported, importlib.metadata has not run; the first use runs it
    found = probe(tmp_path, env, DEFERRED_METADATA_PROBE)
    assert found == ["_Placeholder", True, True, "module"]


def test_status_reads_the_broker_and_its_consumers_without_huey(
    tmp_path: Path, env: dict[str, str]
) -> None:
    modules = loaded_by(tmp_path, env, ["status"], ["status", "--json"])
    assert {"bdp.ops.status", "bdp.broker.consumers", "bdp.ops.queued"} <= modules
    assert not modules & {"huey", "bdp.queue.app", *HEAVY}
