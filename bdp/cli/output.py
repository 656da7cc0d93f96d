"""What the bdp command prints: every line passes `bdp.redact` on its way out.

Status, logs, tables and error lines carry text that came from agents, bd and the broker;
one place makes sure none of it carries a secret, whichever command printed it.
"""

from __future__ import annotations

import json
import sys
from typing import IO, TYPE_CHECKING, Any, cast

import click

from bdp.redact import scrub, scrub_tree

if TYPE_CHECKING:  # rich is imported only by the commands that draw with it
    from rich.console import Console


def echo(text: str = "", err: bool = False, nl: bool = True) -> None:
    """``click.echo``, redacted."""
    click.echo(scrub(text), err=err, nl=nl)


def echo_json(value: Any) -> None:
    """``value`` as indented JSON, its strings redacted before JSON escapes them."""
    click.echo(json.dumps(scrub_tree(value), indent=2))


def console() -> Console:
    """A rich console on stdout whose output is redacted. Emoji codes stay text: an issue
    titled "fix :bug: in login" is shown as typed (and rich's emoji table is never loaded)."""
    from rich.console import Console

    return Console(file=cast("IO[str]", _Scrubbing(sys.stdout)), emoji=False)


class _Scrubbing:
    """A text stream that redacts each write (rich writes a whole render at once)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(scrub(text))

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, flush, encoding: the stream's
        return getattr(self._stream, name)
