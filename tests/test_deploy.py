"""Deployment files: the systemd unit, the Procfile, the compose file and Dockerfile, and the
Kubernetes manifests all run the same consumer, stop it gracefully in time, keep secrets out of
the files, and (for KEDA) watch the very Redis list Huey queues bdp's tasks on."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from honcho.environ import parse_procfile
from huey.consumer_options import ConsumerConfig, OptionParserHandler

from bdp.broker.keys import redis_queue_key
from bdp.config import DEFAULT_QUEUE, DEFAULT_WRAPUP
from bdp.queue.consumer import CLEANUP_WINDOW

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "bdp-worker@.service"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"
PROCFILE = ROOT / "Procfile"
#: What every worker runs: Huey's consumer pointed at bdp's Huey instance.
CONSUMER, TARGET = "huey_consumer", "bdp.consumer.huey"
#: Seconds a graceful stop may take: sessions wrap up, then reset issues and free locks.
STOP_WINDOW = DEFAULT_WRAPUP + CLEANUP_WINDOW


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def consumer_config(argv: list[str]) -> ConsumerConfig:
    """Parse a command line as huey_consumer does; it must point at bdp's Huey."""
    assert CONSUMER in argv, argv
    options, args = (
        OptionParserHandler().get_option_parser().parse_args(argv[argv.index(CONSUMER) + 1 :])
    )
    assert args == [TARGET], argv
    config = ConsumerConfig(**{k: v for k, v in vars(options).items() if v is not None})
    config.validate()
    return config


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as stream:
        documents = [doc for doc in yaml.safe_load_all(stream) if doc is not None]
    assert documents, f"{path} holds no YAML document"
    assert all(isinstance(doc, dict) for doc in documents), path
    return documents


def seconds(duration: str | int) -> float:
    """A compose duration (``90s``, ``1m30s``) or a plain number of seconds."""
    if isinstance(duration, int):
        return float(duration)
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert duration, "an empty duration"
    assert match, f"not a duration: {duration!r}"
    hours, minutes, secs = (int(part or 0) for part in match.groups())
    return float(hours * 3600 + minutes * 60 + secs)


# -- systemd -------------------------------------------------------------------------------


def test_the_worker_unit_stops_with_sigint_and_waits_out_the_wrap_up_window() -> None:
    service = unit()["Service"]

    assert service["KillSignal"] == "SIGINT"  # graceful: sessions wrap up, issues reset
    assert int(service["TimeoutStopSec"]) >= STOP_WINDOW
    assert service["Restart"] == "on-failure"
    assert f"{CONSUMER} {TARGET}" in service["ExecStart"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_systemd_analyze_verifies_an_instance_of_the_unit(tmp_path: Path) -> None:
    instance = tmp_path / "bdp-worker@1.service"
    shutil.copy(UNIT, instance)

    done = subprocess.run(
        ["systemd-analyze", "verify", str(instance)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip() == ""


# -- every YAML file -------------------------------------------------------------------------


def test_every_yaml_file_in_deploy_parses() -> None:
    paths = sorted([*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")])

    assert COMPOSE in paths
    assert {p.name for p in paths} >= {"worker-deployment.yaml", "keda-scaledobject.yaml"}
    for path in paths:
        yaml_documents(path)


# -- Procfile --------------------------------------------------------------------------------

#: Stands in for redis-server, huey_consumer and bdp: records its BDP_REDIS_URL and argv.
STUB = """#!/bin/sh
{ printf '%s\\036%s' "$BDP_REDIS_URL" "${0##*/}"; for a in "$@"; do printf '\\037%s' "$a"; done
  printf '\\n'; } >> "$PROCFILE_CALLS"
"""
#: What foreman-runner does with a Procfile command: drop its options, exec the rest.
FOREMAN_RUNNER = """#!/bin/sh
while [ "$1" != "--" ]; do shift; done
shift
exec "$@"
"""


def procfile() -> dict[str, str]:
    return dict(parse_procfile(PROCFILE.read_text()).processes)


def run_line(name: str, manager: str, tmp_path: Path, **env: str) -> list[tuple[str, list[str]]]:
    """Run one Procfile line the way ``manager`` does, with the programs it starts replaced by
    stubs; returns each program's (BDP_REDIS_URL, argv) in call order."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for program, text in (
        ("redis-server", STUB),
        ("huey_consumer", STUB),
        ("bdp", STUB),
        ("foreman-runner", FOREMAN_RUNNER),
    ):
        (bin_dir / program).write_text(text)
        (bin_dir / program).chmod(0o755)
    calls = tmp_path / f"{name}.calls"
    calls.unlink(missing_ok=True)
    line = procfile()[name]
    if manager == "foreman":  # it runs `foreman-runner -d DIR -p -- LINE` through a shell
        line = f"{bin_dir / 'foreman-runner'} -d {ROOT} -p -- {line}"
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "PROCFILE_CALLS": str(calls)}
    subprocess.run(
        ["/bin/sh", "-c", line], env={**base, **env}, cwd=ROOT, timeout=30, check=True
    )  # fmt: skip  (honcho runs each line with `sh -c`)
    lines = calls.read_text().split("\n")[:-1]  # not splitlines(): it splits at \036 too
    records = [record.split("\036") for record in lines]
    return [(url, rest.split("\037")) for url, rest in records]


@pytest.mark.parametrize("manager", ["honcho", "foreman"])
def test_the_procfile_worker_runs_the_consumer_on_the_private_redis(
    manager: str, tmp_path: Path
) -> None:
    [(_, redis_argv)] = run_line("redis", manager, tmp_path)
    [(worker_url, worker_argv)] = run_line("worker", manager, tmp_path)
    [(given_url, _)] = run_line("worker", manager, tmp_path, BDP_REDIS_URL="redis://q:6379/1")

    assert redis_argv[0] == "redis-server"
    port = redis_argv[redis_argv.index("--port") + 1]
    assert port != "6379"  # the usual system Redis
    assert worker_url == f"redis://127.0.0.1:{port}/0"
    assert given_url == "redis://q:6379/1"  # a Redis elsewhere, with the redis line dropped
    config = consumer_config(worker_argv)
    assert config.worker_type == "thread"
    assert config.workers >= 1


@pytest.mark.parametrize("manager", ["honcho", "foreman"])
def test_the_procfile_producer_watches_the_repo_once_the_broker_answers(
    manager: str, tmp_path: Path
) -> None:
    calls = run_line("producer", manager, tmp_path, BDP_REPO="/src/repo", BDP_REDIS_PORT="7001")

    assert [argv for _, argv in calls] == [
        ["bdp", "status"],
        ["bdp", "enqueue", "--watch", "/src/repo"],
    ]
    assert {url for url, _ in calls} == {"redis://127.0.0.1:7001/0"}


def test_the_procfile_redis_is_private_durable_and_optional(tmp_path: Path) -> None:
    [(_, argv)] = run_line("redis", "honcho", tmp_path, BDP_REDIS_DIR=str(tmp_path / "data"))

    assert argv[argv.index("--bind") + 1] == "127.0.0.1"
    assert argv[argv.index("--appendonly") + 1] == "yes"
    assert argv[argv.index("--dir") + 1] == str(tmp_path / "data")
    assert (tmp_path / "data").is_dir()
    comments = [line for line in PROCFILE.read_text().splitlines() if line.startswith("#")]
    assert any("redis:" in line and "BDP_REDIS_URL" in line for line in comments)


# -- docker compose and the Dockerfile ---------------------------------------------------------


def compose() -> dict[str, Any]:
    [document] = yaml_documents(COMPOSE)
    return document


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment, list or mapping form; None for a pass-through variable."""
    env = service.get("environment", {})
    if isinstance(env, dict):
        return {k: None if v is None else str(v) for k, v in env.items()}
    return {item.split("=", 1)[0]: item.split("=", 1)[1] if "=" in item else None for item in env}


def test_compose_redis_keeps_an_append_only_file_on_a_volume() -> None:
    redis = compose()["services"]["redis"]

    command = redis["command"]
    words = command if isinstance(command, list) else command.split()
    assert words[words.index("--appendonly") + 1] == "yes"
    assert any(str(v).split(":")[0] in compose()["volumes"] for v in redis["volumes"])
    assert "ports" not in redis  # reachable from the compose network only


def test_compose_workers_scale_and_stop_gracefully_within_the_grace_period() -> None:
    services = compose()["services"]
    worker = services["worker"]

    assert "container_name" not in worker  # `--scale worker=N` needs generated names
    assert "ports" not in worker
    config = consumer_config(worker["command"])
    assert (config.workers, config.worker_type) == (1, "thread")
    assert worker["stop_signal"] == "SIGINT"  # huey_consumer's graceful signal by default
    assert config.graceful_signal == "INT"
    assert seconds(worker["stop_grace_period"]) >= STOP_WINDOW
    env = environment(worker)
    assert re.fullmatch(r"redis://redis:6379/\d+", env["BDP_REDIS_URL"] or ""), env
    assert "redis" in services
    assert env["ANTHROPIC_API_KEY"] is None  # passed through, never written here
    assert "redis" in worker.get("depends_on", {})


def test_compose_mounts_the_repo_and_runs_a_watching_producer() -> None:
    services = compose()["services"]

    for name in ("worker", "producer"):
        mounts = [str(v) for v in services[name]["volumes"]]
        assert mounts[0].startswith("${BDP_REPO:?"), mounts  # required, with a message
        assert mounts[0].endswith(":${BDP_REPO}"), mounts  # the same path inside
    producer = services["producer"]
    assert producer["command"] == ["bdp", "enqueue", "--watch", "${BDP_REPO}"]
    assert producer["stop_signal"] == "SIGINT"  # Ctrl-C ends --watch cleanly


def test_the_dockerfile_installs_the_locked_project_and_runs_the_consumer() -> None:
    text = DOCKERFILE.read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]

    assert instructions[0] == "FROM python:3.11-slim"
    syncs = [line for line in instructions if "uv sync" in line]
    assert syncs
    assert all("--locked" in line and "--no-dev" in line for line in syncs), syncs
    [cmd] = [line for line in instructions if line.startswith("CMD ")]
    assert consumer_config(json.loads(cmd.removeprefix("CMD ")))
    [entrypoint] = [line for line in instructions if line.startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT ")) == ["tini", "--"]
    assert "ARG BD_INSTALL" in text  # how bd gets into the image


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
    )
    return done.returncode == 0


@pytest.mark.skipif(
    not docker_compose_available(), reason="the docker CLI with the compose plugin is not installed"
)
def test_docker_compose_accepts_the_compose_file(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BDP_REPO": str(tmp_path),
        "ANTHROPIC_API_KEY": "sk-test-not-real",
        "DOCKER_HOST": f"unix://{tmp_path / 'no-daemon.sock'}",
    }

    done = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr


# -- Kubernetes and KEDA -----------------------------------------------------------------------


def k8s(kind: str, filename: str) -> dict[str, Any]:
    [document] = [d for d in yaml_documents(K8S / filename) if d.get("kind") == kind]
    return document


def worker_container() -> dict[str, Any]:
    deployment = k8s("Deployment", "worker-deployment.yaml")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_the_worker_deployment_runs_one_consumer_per_pod_with_secrets_from_a_secret() -> None:
    container = worker_container()

    argv = [*container.get("command", []), *container.get("args", [])]
    config = consumer_config(argv)
    assert (config.workers, config.worker_type) == (1, "thread")
    env = {item["name"]: item for item in container["env"]}
    for name in ("ANTHROPIC_API_KEY", "BDP_REDIS_URL"):
        assert "value" not in env[name], f"{name} must come from a Secret"
        assert env[name]["valueFrom"]["secretKeyRef"]["name"]
        assert env[name]["valueFrom"]["secretKeyRef"]["key"]


def test_the_worker_deployment_stops_gracefully_within_the_grace_period() -> None:
    deployment = k8s("Deployment", "worker-deployment.yaml")
    container = worker_container()

    # Kubernetes sends SIGTERM: the consumer must take it as the graceful stop
    config = consumer_config([*container.get("command", []), *container.get("args", [])])
    assert config.graceful_signal == "TERM"
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= STOP_WINDOW


def test_keda_scales_the_worker_deployment_on_hueys_pending_list() -> None:
    deployment = k8s("Deployment", "worker-deployment.yaml")
    scaled = k8s("ScaledObject", "keda-scaledobject.yaml")
    auth = k8s("TriggerAuthentication", "keda-scaledobject.yaml")

    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == redis_queue_key(DEFAULT_QUEUE)
    assert int(trigger["metadata"]["listLength"]) >= 1
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    # the Redis password comes from a Secret through the TriggerAuthentication
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    [ref] = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "password"
    assert ref["name"]
    assert ref["key"]
    assert "password" not in trigger["metadata"]
