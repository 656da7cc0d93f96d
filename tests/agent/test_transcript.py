"""bdp.agent.transcript: private, redacted log files, finding logs, describe()."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bdp.agent.transcript import Transcript, describe, find_logs, log_path, logs_dir
from bdp.config import Settings
from bdp.redact import Redactor
from tests.support.secrets import API_KEY, GH_TOKEN, REDIS_PASSWORD, SECRET_ENV


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "state", redis_url=f"redis://:{REDIS_PASSWORD}@cache:6379/0")


@pytest.fixture
def redactor(settings: Settings) -> Redactor:
    return Redactor.from_env(SECRET_ENV, settings)


@pytest.fixture
def transcript(settings: Settings, redactor: Redactor) -> Iterator[Transcript]:
    opened = Transcript(log_path(settings, "t-abc", "run000000001"), redactor)
    yield opened
    opened.close()


def test_logs_folder_is_private_to_the_user(transcript: Transcript, settings: Settings) -> None:
    folder = settings.home / "logs"

    assert transcript.path.parent == folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_log_and_jsonl_files_are_private_to_the_user(transcript: Transcript) -> None:
    transcript.line("hello")
    transcript.message("note", {"text": "hello"})

    assert stat.S_IMODE(transcript.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(transcript.jsonl_path.stat().st_mode) == 0o600
    assert transcript.jsonl_path == transcript.path.with_suffix(".jsonl")


def test_log_lines_are_stamped_redacted_and_flushed(transcript: Transcript) -> None:
    transcript.line(f"first {API_KEY}\nsecond redis://:{REDIS_PASSWORD}@cache:6379/0")

    lines = transcript.path.read_text().splitlines()  # read before close: each write flushes
    assert len(lines) == 2
    assert lines[0].endswith(" first ***")
    assert lines[1].endswith(" second redis://:***@cache:6379/0")
    assert API_KEY not in lines[0]
    assert REDIS_PASSWORD not in lines[1]


def test_an_empty_log_line_still_writes_one_line(transcript: Transcript) -> None:
    transcript.line("")

    assert len(transcript.path.read_text().splitlines()) == 1


def test_jsonl_records_are_json_with_type_and_redacted_message(transcript: Transcript) -> None:
    transcript.message("assistant", {"text": f"my token is {GH_TOKEN}", "n": 1})
    transcript.message("result", {"cost": 0.5})

    records = [json.loads(line) for line in transcript.jsonl_path.read_text().splitlines()]
    assert [r["type"] for r in records] == ["assistant", "result"]
    assert records[0]["message"] == {"text": "my token is ***", "n": 1}
    assert isinstance(records[0]["ts"], float)
    assert GH_TOKEN not in transcript.jsonl_path.read_text()


def test_reopening_a_transcript_appends(settings: Settings, redactor: Redactor) -> None:
    path = log_path(settings, "t-abc", "run1")
    for text in ("one", "two"):
        opened = Transcript(path, redactor)
        opened.line(text)
        opened.close()

    assert [line.split(" ", 1)[1] for line in path.read_text().splitlines()] == ["one", "two"]


@pytest.mark.parametrize("secret", ['pa"ss-word-1', "pässwörd-123"])
def test_a_secret_that_json_escapes_is_still_redacted_in_the_jsonl(
    settings: Settings, secret: str
) -> None:
    opened = Transcript(
        log_path(settings, "t-1", "run1"), Redactor.from_env({"API_KEY": secret}, settings)
    )
    opened.message("user", {"text": f"env says {secret}"})
    opened.close()

    record = json.loads(opened.jsonl_path.read_text())
    assert secret not in record["message"]["text"]


# -- log names and find_logs -----------------------------------------------------------


def test_log_path_makes_issue_ids_safe_for_file_names(settings: Settings) -> None:
    path = log_path(settings, "team/x y", "r1")

    assert path.parent == logs_dir(settings)
    assert path.name.endswith("-team_x_y-r1.log")


def _touch_log(settings: Settings, issue_id: str, run_id: str) -> Path:
    path = log_path(settings, issue_id, run_id)
    path.write_text("x\n")
    return path


def test_find_logs_without_a_logs_folder_is_empty(settings: Settings) -> None:
    assert find_logs(settings) == []
    assert find_logs(settings, "t-abc") == []


def test_find_logs_filters_by_issue_id_without_mixing_prefixes(settings: Settings) -> None:
    abc = _touch_log(settings, "t-abc", "aaaa11111111")
    abcd = _touch_log(settings, "t-abcd", "bbbb22222222")
    abc_again = _touch_log(settings, "t-abc", "cccc33333333")
    ab = _touch_log(settings, "t-ab", "dddd44444444")

    assert find_logs(settings, "t-abc") == sorted([abc, abc_again])
    assert find_logs(settings, "t-abcd") == [abcd]
    assert find_logs(settings, "t-ab") == [ab]
    assert find_logs(settings, "t") == []
    assert find_logs(settings, "t-abcde") == []


def test_find_logs_matches_ids_with_unsafe_characters(settings: Settings) -> None:
    path = _touch_log(settings, "team/x", "r1")

    assert find_logs(settings, "team/x") == [path]


def test_find_logs_returns_all_logs_oldest_first(settings: Settings) -> None:
    folder = logs_dir(settings)
    names = [
        "20240102-000000-t-b-r2.log",
        "20240101-235959-t-a-r1.log",
        "20250101-000000-t-a-r3.log",
    ]
    for name in names:
        (folder / name).write_text("x\n")
    (folder / "20240101-000000-t-a-r0.jsonl").write_text("{}\n")

    assert [p.name for p in find_logs(settings)] == sorted(names)
    assert [p.name for p in find_logs(settings, "t-a")] == [
        "20240101-235959-t-a-r1.log",
        "20250101-000000-t-a-r3.log",
    ]


# -- describe --------------------------------------------------------------------------
# Stand-ins for the SDK's message classes: describe() matches by class name only.


@dataclass
class TextBlock:
    text: str


@dataclass
class ToolUseBlock:
    name: str
    input: dict[str, Any]


@dataclass
class ToolResultBlock:
    content: Any
    is_error: bool | None = None


@dataclass
class AssistantMessage:
    content: list[Any]
    error: str | None = None


@dataclass
class UserMessage:
    content: Any


@dataclass
class SystemMessage:
    subtype: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ResultMessage:
    subtype: str
    num_turns: int
    total_cost_usd: float | None


def test_describe_renders_assistant_text_and_tool_use() -> None:
    message = AssistantMessage(
        [TextBlock("Looking at the code."), ToolUseBlock("Read", {"file_path": "a.py"})]
    )

    assert describe(message) == [
        "assistant: Looking at the code.",
        'tool Read: {"file_path": "a.py"}',
    ]


def test_describe_adds_the_api_error_of_an_assistant_message() -> None:
    assert describe(AssistantMessage([], error="rate_limit")) == ["api error: rate_limit"]


def test_describe_renders_tool_results_and_flags_errors() -> None:
    message = UserMessage([ToolResultBlock("ok"), ToolResultBlock("boom", is_error=True)])

    assert describe(message) == ["tool result: ok", "tool result (error): boom"]


def test_describe_ignores_a_plain_text_user_message() -> None:
    assert describe(UserMessage("the prompt")) == []


def test_describe_renders_session_start_and_other_system_messages() -> None:
    init = SystemMessage("init", {"model": "claude-x", "cwd": "/repo"})

    assert describe(init) == ["session started: model claude-x, cwd /repo"]
    assert describe(SystemMessage("compact", {"n": 1})) == ['system compact: {"n": 1}']


def test_describe_renders_the_result_with_turns_and_cost() -> None:
    assert describe(ResultMessage("success", 7, 0.12345)) == ["result success: 7 turns, $0.1235"]
    assert describe(ResultMessage("error_max_turns", 3, None)) == [
        "result error_max_turns: 3 turns, $0.0000"
    ]


def test_describe_clips_long_tool_input_to_one_short_line() -> None:
    message = AssistantMessage([ToolUseBlock("Write", {"content": "line\n" * 200})])

    (line,) = describe(message)
    assert line.endswith("…")
    assert "\n" not in line
    assert len(line) <= len("tool Write: ") + 301


def test_describe_returns_nothing_for_unknown_messages() -> None:
    @dataclass
    class StreamEvent:
        event: dict[str, Any]

    assert describe(StreamEvent({})) == []
    assert describe(object()) == []
