"""`bdp report`: what recent runs did, in the terminal, as JSON, or as an HTML page."""

from __future__ import annotations

import time
from pathlib import Path

import click

from bdp.cli.main import app_from_env, main
from bdp.cli.output import console as output_console
from bdp.cli.output import echo, echo_json
from bdp.durations import parse_duration
from bdp.errors import BdpError


@main.command()
@click.option(
    "--since", default="24h", show_default=True, help="How far back: 90s, 10m, 2h, 7d, 1h30m."
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report to FILE as one self-contained HTML page.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the text report.")
def report(since: str, html_file: Path | None, as_json: bool) -> None:
    """Show recent runs: timeline per worker, cost, slow issues.

    Runs that finished within --since, from the outcome records the broker
    keeps (the newest 1000): a timeline of each worker's runs coloured by
    outcome, with retries and lock waits marked; cost and tokens by outcome
    and by day; the slowest and the costliest issues.

    \b
    Example:
        bdp report                       # the last 24 hours
        bdp report --since 7d --html report.html
        bdp report --since 1h30m --json | jq .total
    """
    window = parse_duration(since, "--since")
    from bdp.ops.report import build_report

    built = build_report(app_from_env().state.outcomes(), time.time(), window)
    if html_file is not None:
        from bdp.ops.report_html import report_html

        _write(html_file, report_html(built, since))
        echo(f"wrote {html_file}", err=True)
    if as_json:
        echo_json(built.to_json())
        return
    from bdp.cli.report_view import print_report

    print_report(output_console(), built, since)


def _write(path: Path, page: str) -> None:
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as error:
        raise BdpError(
            f"cannot write {path}: {error.strerror or error}",
            "choose a file in a directory that exists and you can write",
        ) from None
