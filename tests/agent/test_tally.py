"""The tally's live numbers: turns and tokens as they arrive, settled by each result."""

from __future__ import annotations

from types import SimpleNamespace

from claude_agent_sdk import AssistantMessage, ResultMessage, TextBlock, ToolUseBlock

from bdp.agent.tally import Tally, tool_label


def assistant(message_id: str, *blocks: object, tokens: tuple[int, int] = (100, 10)) -> object:
    usage = {"input_tokens": tokens[0], "output_tokens": tokens[1]}
    return AssistantMessage(list(blocks), "m", usage=usage, message_id=message_id)  # type: ignore[arg-type]


def result(turns: int, cost: float) -> object:
    usage = {"input_tokens": 250, "output_tokens": 25}
    return ResultMessage(
        "success", 1, 1, False, turns, "s1", total_cost_usd=cost, usage=usage, result="DONE: x"
    )


def test_turns_and_tokens_count_as_they_arrive_and_settle_with_the_result() -> None:
    tally = Tally()
    edit = ToolUseBlock("u1", "Edit", {"file_path": "src/app.py", "old_string": "a"})

    tally.add_assistant(assistant("m1", TextBlock("looking")))
    tally.add_assistant(assistant("m1", edit))  # same API response, another block
    live = tally.activity()

    assert (live.turns, live.input_tokens, live.output_tokens) == (1, 100, 10)
    assert live.tool == "Edit src/app.py"

    tally.add_assistant(assistant("m2", TextBlock("DONE: x")))
    assert tally.activity().turns == 2
    tally.add_result(result(2, 0.12))

    settled = tally.activity()
    assert (settled.turns, settled.input_tokens, settled.output_tokens) == (2, 250, 25)
    assert (settled.cost_usd, settled.tool) == (0.12, "")


def test_tool_labels_name_the_target_and_stay_short() -> None:
    assert tool_label("Bash", {"command": "pytest -q\nexit"}) == "Bash pytest -q exit"
    assert tool_label("mcp__bdp__lock_files", {"paths": ["a.py"]}) == "lock_files ['a.py']"
    assert tool_label("TodoWrite", {"todos": []}) == "TodoWrite"
    long = tool_label("Read", {"file_path": "x" * 200})
    assert len(long) == 60
    assert long.endswith("…")


def test_a_message_without_an_id_still_counts_once() -> None:
    tally = Tally()
    message = SimpleNamespace(message_id=None, usage=None, content=[])

    tally.add_assistant(message)

    assert tally.activity().turns == 1
