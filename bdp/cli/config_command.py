"""`bdp config`: each setting, its value and where it came from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bdp.cli.main import main
from bdp.cli.options import REPO
from bdp.cli.output import console, echo, echo_json

if TYPE_CHECKING:
    from bdp.ops.config_view import ConfigView, Row


@main.command()
@click.argument("repo", type=REPO, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
def config(repo: Path | None, as_json: bool) -> None:
    """Show each setting, its value and where it came from.

    Sources, highest first: a command's option, the environment (BDP_*),
    the repo's .bdp.toml as committed (its own settings, isolation and
    land.remote), the user's config file ($XDG_CONFIG_HOME/bdp/config.toml,
    else ~/.config/bdp/config.toml), the default. Secrets are masked.

    \b
    Example:
        bdp config
        bdp config ~/src/myrepo          # with the repo's own settings
        bdp config --json | jq '.settings[] | select(.source != "default")'
    """
    from bdp.config_file import Start
    from bdp.ops.config_view import collect_config
    from bdp.repo.git import work_tree_root

    started = click.get_current_context().find_root().obj
    root = work_tree_root(repo.expanduser().resolve()) if repo is not None else None
    view = collect_config(os.environ, started if isinstance(started, Start) else Start(), root)
    if as_json:
        echo_json(view.to_json())
    else:
        _print(view)


def _print(view: ConfigView) -> None:
    from bdp.ops.config_view import REPO_FILES

    found = "" if view.user_file_found else " (none there)"
    echo(f"user config file: {view.user_file or '(no home folder)'}{found}")
    _table("settings", view.settings, with_variable=True)
    if view.repo_path:
        _table(f"{view.repo_path}: {REPO_FILES}, as committed at HEAD", view.repo, False)
    for note in view.notes:
        echo(f"note: {note}")


def _table(title: str, rows: tuple[Row, ...], with_variable: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    echo(title)
    table = Table(box=None, header_style="bold")
    for column in (
        ("setting", "variable", "value", "from") if with_variable else ("setting", "value", "from")
    ):
        table.add_column(column, overflow="fold", no_wrap=column != "value")
    for row in rows:
        cells = [row.key, row.variable, row.text, row.source]
        if not with_variable:
            del cells[1]
        table.add_row(*map(escape, cells))
    console().print(table)
