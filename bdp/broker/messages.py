"""Task messages on the broker: JSON, signed with a key only bdp's processes hold.

Huey's default serializer is pickle, and unpickling runs code: anyone who could write to the
Redis list or the SQLite queue (an agent that found the broker's URL, say) would run code in
every consumer reading it. bdp's tasks carry nothing but simple values (`TaskArgs.to_task`),
so a message is plain JSON, and an HMAC-SHA256 over it proves it came from a holder of the
key. A message that fails either check is dropped, unread: no pickle is ever loaded.

The key is ``BDP_SECRET`` (required with a Redis other machines may share: every machine
sets the same value), or, for the SQLite queue and a Redis on this machine's loopback, a
random key kept in ``$BDP_HOME/secret.key``, readable by the user alone, made on first use.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from huey.registry import Message
from huey.serializer import Serializer

from bdp.broker.peek import PREFIX
from bdp.config import Settings
from bdp.errors import ConfigError

#: Shortest BDP_SECRET accepted.
MIN_SECRET = 16
#: Where the SQLite queue's key lives, in the state dir.
KEY_FILE = "secret.key"
#: How to make a good secret, for the error that asks for one.
HOW_TO_SET_THE_KEY = (
    'set BDP_SECRET to one random value on every machine: BDP_SECRET="$(openssl rand -hex 32)"'
)


class BadMessage(ValueError):
    """A message on the queue that is not a task bdp signed."""


def task_key(settings: Settings) -> bytes:
    """The key task messages are signed with, for this broker."""
    if settings.secret:
        if len(settings.secret) < MIN_SECRET:
            short = f"BDP_SECRET is shorter than {MIN_SECRET} characters"
            raise ConfigError(short, HOW_TO_SET_THE_KEY)
        return settings.secret.encode()
    if settings.redis_url and not _on_this_machine(settings.redis_url):
        raise ConfigError("BDP_REDIS_URL is set but BDP_SECRET is not", HOW_TO_SET_THE_KEY)
    return _local_key(settings.home / KEY_FILE)


def _on_this_machine(url: str) -> bool:
    """True for a Redis only this machine reaches (loopback, a socket): its consumers share
    the state dir, and with it the key file. Any other Redis may serve other machines."""
    parts = urlsplit(url)
    return parts.scheme == "unix" or parts.hostname in ("127.0.0.1", "localhost", "::1")


def _local_key(path: Path) -> bytes:
    """The key in ``path``, made (0600, atomically) when there is none yet."""
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(secrets.token_hex(32))
    try:
        os.link(temporary, path)  # fails if another process made it first: theirs is kept
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_bytes().strip()


class SignedJson(Serializer):  # type: ignore[misc]
    """Huey's serializer for bdp: a message is ``bdp1.<hmac>.<json>``; nothing is unpickled."""

    def __init__(self, key: Callable[[], bytes]) -> None:
        super().__init__()
        self._source = key

    @functools.cached_property
    def _key(self) -> bytes:
        """Read on first use: commands that never touch a task message need no key."""
        return hashlib.sha256(b"bdp task messages\0" + self._source()).digest()

    def check_key(self) -> None:
        """Raise the ConfigError of a missing or weak key now (at consumer start)."""
        _ = self._key

    def _serialize(self, data: Any) -> bytes:
        body = json.dumps(_encode(data), separators=(",", ":"), sort_keys=True).encode()
        return PREFIX + self._sign(body) + b"." + body

    def _deserialize(self, data: bytes) -> Any:
        if not data.startswith(PREFIX):
            raise BadMessage("not signed by bdp (a foreign or older message)")
        signature, _, body = data[len(PREFIX) :].partition(b".")
        if not hmac.compare_digest(signature, self._sign(body)):
            raise BadMessage("its signature does not match this BDP_SECRET")
        try:
            return _decode(json.loads(body))
        except (ValueError, TypeError, KeyError) as error:
            raise BadMessage(f"signed, but not a task message: {error}") from None

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).hexdigest().encode()


def _encode(value: Any) -> Any:
    """JSON-ready form of a Huey message and what it holds (simple values only)."""
    if isinstance(value, Message):
        if value.chord_config is not None:
            raise TypeError("bdp's task messages carry no chords")
        return {"$message": {k: _encode(v) for k, v in value._asdict().items()}}
    if isinstance(value, datetime.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"a {type(value).__name__} cannot go on bdp's queue (simple values only)")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "$message" in value:
            fields = {k: _decode(v) for k, v in value["$message"].items()}
            fields["args"] = tuple(fields.get("args") or ())
            return Message(**fields)
        if "$datetime" in value:
            return datetime.datetime.fromisoformat(value["$datetime"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value
