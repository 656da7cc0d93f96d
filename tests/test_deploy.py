"""Deployment files: the systemd template unit is valid and stops workers gracefully."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from bdp.config import DEFAULT_WRAPUP
from bdp.consumer import CLEANUP_WINDOW

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "bdp-worker@.service"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_the_worker_unit_stops_with_sigint_and_waits_out_the_wrap_up_window() -> None:
    service = unit()["Service"]

    assert service["KillSignal"] == "SIGINT"  # graceful: sessions wrap up, issues reset
    assert int(service["TimeoutStopSec"]) >= DEFAULT_WRAPUP + CLEANUP_WINDOW
    assert service["Restart"] == "on-failure"
    assert "huey_consumer workers.consumer.huey" in service["ExecStart"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_systemd_analyze_verifies_an_instance_of_the_unit(tmp_path: Path) -> None:
    instance = tmp_path / "bdp-worker@1.service"
    shutil.copy(UNIT, instance)

    done = subprocess.run(["systemd-analyze", "verify", str(instance)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip() == ""
