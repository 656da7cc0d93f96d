"""bdp.cli.options: one meaning per short flag in every command, and durations with units."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from bdp.cli import main
from bdp.cli.options import Duration
from bdp.errors import ConfigError

README = Path(__file__).resolve().parents[2] / "README.md"
#: What each short flag means, in every command that has it (the README's table says why).
SHORT_FLAGS = {
    "-h": "--help",
    "-n": "--max-agents",
    "-t": "--type",
    "-p": "--priority",
    "-l": "--label",
    "-w": "--watch",
    "-f": "--follow",
    "-v": "--verbose",
    "-k": "--kind",
}


def contexts(group: click.Group, parent: click.Context | None = None) -> list[click.Context]:
    """A context for ``group`` and for every command under it, as a command line makes them
    (a subcommand inherits ``-h`` from the group's settings)."""
    name = "bdp" if parent is None else group.name
    context = click.Context(group, parent, info_name=name, **group.context_settings)
    found = [context]
    for _, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += contexts(command, context)
        else:
            found.append(click.Context(command, context, info_name=command.name))
    return found


def short_flags() -> dict[str, dict[str, str]]:
    """Per short flag, each command that has it and the long name it has there (the first)."""
    found: dict[str, dict[str, str]] = {}
    for context in contexts(main):
        for param in context.command.get_params(context):
            if not isinstance(param, click.Option):
                continue
            names = [*param.opts, *param.secondary_opts]
            longs = [o for o in names if o.startswith("--")]
            for short in (o for o in names if not o.startswith("--")):
                found.setdefault(short, {})[context.command_path] = longs[0] if longs else ""
    return found


def test_the_walk_sees_every_command_and_its_short_flags() -> None:
    flags = short_flags()
    assert flags["-n"]["bdp run"] == "--max-agents"  # the walk reaches a command's options
    assert set(flags["-h"]) == {c.command_path for c in contexts(main)}  # every command's help


@pytest.mark.parametrize("short", sorted(short_flags()))
def test_a_short_flag_means_the_same_long_option_in_every_command(short: str) -> None:
    used = short_flags()[short]
    assert set(used.values()) == {SHORT_FLAGS.get(short)}, used


def test_the_readme_lists_each_short_flag_with_its_long_name() -> None:
    text = README.read_text(encoding="utf-8")
    for short, long in SHORT_FLAGS.items():
        assert f"| `{short}` | `{long}` |" in text


def test_timeout_has_no_short_flag_any_more() -> None:
    assert "--timeout" not in {long for long in SHORT_FLAGS.values()}
    run = main.commands["run"]
    timeout = next(p for p in run.params if p.name == "timeout")
    assert timeout.opts == ["--timeout"]


def convert(kind: Duration, text: str | float, opts: tuple[str, ...] = ("--interval",)) -> float:
    option = click.Option(list(opts), type=kind)
    value: float = kind.convert(text, option, None)
    return value


def test_a_duration_option_reads_units_and_its_own_unit_for_a_bare_number() -> None:
    assert convert(Duration("s"), "2") == 2
    assert convert(Duration("m"), "2") == 120
    assert convert(Duration(None), "1h30m") == 5400
    assert convert(Duration("s"), 90.0) == 90.0  # a default click already converted


def test_a_bad_duration_names_the_long_option() -> None:
    with pytest.raises(ConfigError) as caught:
        convert(Duration(None), "7", ("-o", "--older-than"))
    assert str(caught.value) == "--older-than='7' has no unit (add one, e.g. 7h or 7d)"
