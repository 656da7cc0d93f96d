"""The `bdp` click group and its single error boundary.

User mistakes surface as one ``Error: ...`` line and a non-zero exit, converted in exactly
one place (`BdpGroup.invoke`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from bdp.cli.output import echo
from bdp.config import Settings, check_home, default_home, make_private
from bdp.errors import BdpError, BrokerUnavailable, is_broker_error, is_sqlite_error
from bdp.redact import scrub

if TYPE_CHECKING:  # commands import these lazily, to keep `bdp --help` fast
    from bdp.queue.app import App


class BdpGroup(click.Group):
    """Turns BdpError (and an unreachable broker) into click's one-line error."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BdpError as error:
            raise _click_error(error) from None
        except Exception as error:  # redis-py's errors are not OSErrors; anything else re-raises
            if not is_broker_error(error):
                raise
            raise _click_error(_broker_unavailable(error)) from None


class _UsageFailure(click.ClickException):
    """A setting or option has a value bdp cannot use."""

    exit_code = 2


def _click_error(error: BdpError) -> click.ClickException:
    kind = _UsageFailure if error.exit_code == _UsageFailure.exit_code else click.ClickException
    return kind(scrub(str(error)))


def _broker_unavailable(error: Exception) -> BrokerUnavailable:
    """What to say when the broker cannot be reached: Redis, or the SQLite file."""
    if is_sqlite_error(error):
        return BrokerUnavailable(
            f"cannot use the queue database {_broker_label()}: {error}",
            "check BDP_HOME is writable",
        )
    return BrokerUnavailable(
        f"cannot reach Redis at {_broker_label()}: {error}",
        "start redis-server, or fix BDP_REDIS_URL (unset it to use local SQLite)",
    )


def _broker_label() -> str:
    try:
        return Settings.from_env().broker_label
    except BdpError:
        return "the configured broker"


def app_from_env(**overrides: object) -> App:
    """The app for this command: settings from ``BDP_*``, options overriding them."""
    from bdp.queue.app import App

    return App.create(Settings.from_env(None, **overrides))


@click.group(cls=BdpGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bdp")
def main() -> None:
    """Work through a beads backlog with many Claude agents at once.

    \b
    Example:
        bdp run ~/src/myrepo -n 4        # one shot: enqueue, work, summarise
        bdp enqueue ~/src/myrepo         # or queue work for huey_consumer workers
        huey_consumer bdp.consumer.huey -w 4 -k thread
    """
    make_private()
    _start(click.get_current_context())
    check_home(default_home())


def _start(ctx: click.Context) -> None:
    """Apply the user's config file under the environment (what it set is kept as the
    context's ``obj``, for `bdp config`); warn once about what bdp does not know. Imported
    here: `bdp --help` never gets this far."""
    from bdp.config_file import start

    started = start(os.environ)
    for warning in started.warnings:
        echo(f"warning: {warning}", err=True)
    ctx.obj = started
