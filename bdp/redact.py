"""Redaction: secret values (API keys, tokens, passwords) replaced by ``***`` before text
leaves bdp: transcripts, logs, bd reasons and comments, outcome records, status, notifications
and error lines all pass through here.

The secrets are the values of environment variables whose names say they are secret, and
the password of the Redis URL (``redis://:PW@host`` or ``redis://host?password=PW``);
matching is by value, so an agent that runs ``env`` cannot leak them through what bdp writes.
Common encodings of each value are matched too: base64 (standard and URL-safe, at each of
the three byte alignments a value can take inside a longer encoded text, so ``env | base64``
is caught), hex, URL-encoding and the value reversed. Any URL's password is hidden whatever
its value.

`scrub` and `scrub_tree` use one redactor for the process's environment, rebuilt when the
secrets in it change.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from bdp.config import Settings

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]*):([^@/\s]+)@")
_QUERY_PASSWORD = re.compile(r"([?&](?:password|passwd|pass|pwd)=)([^&#\s]+)", re.IGNORECASE)
#: Values shorter than this are not treated as secrets (ordinary words would vanish).
_MIN_SECRET = 6
#: Encoded fragments shorter than this are not matched (they would hit unrelated text).
_MIN_FRAGMENT = 8
#: Variables whose value is a URL that may carry a password.
URL_VARIABLES = ("BDP_REDIS_URL", "REDIS_URL")


def is_secret_name(name: str) -> bool:
    """True for variable names that say they hold a secret (KEY, TOKEN, PASSWORD, ...)."""
    return bool(_SECRET_NAME.search(name))


def url_password(url: str) -> str | None:
    """The password a URL carries, in its user part or as ``?password=``; None if none."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return None
    if password:
        return password
    found = parse_qs(parts.query).get("password")
    return found[0] if found else None


def secrets_of(env: Mapping[str, str], redis_url: str | None = None) -> list[str]:
    """The secret values in ``env`` (and the password of ``redis_url``)."""
    found = [value for name, value in env.items() if is_secret_name(name)]
    urls = [env.get(name, "") for name in URL_VARIABLES] + [redis_url or ""]
    found += [password for password in map(url_password, urls) if password]
    return found


def encodings(secret: str) -> Iterator[str]:
    """The forms a secret may take in text: itself, and its common encodings."""
    raw = secret.encode()
    yield secret
    yield secret[::-1]
    yield quote(secret, safe="")
    yield raw.hex()
    yield raw.hex().upper()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for offset in range(3):
            yield _aligned_fragment(encode, raw, offset)


def _aligned_fragment(encode: Any, raw: bytes, offset: int) -> str:
    """The part of the base64 of ``raw`` that stays the same wherever ``raw`` sits in a
    longer text, when it starts ``offset`` bytes into a 3-byte group."""
    data = b"\0" * offset + raw
    text: str = encode(data).decode()
    start = 4 if offset else 0  # the first group mixes in the bytes before the secret
    end = 4 * (len(data) // 3)  # the last, partial group depends on the bytes after it
    return text[start:end]


class Redactor:
    """Replaces known secret values, and their encodings, with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {
            form
            for secret in secrets
            if len(secret) >= _MIN_SECRET
            for form in encodings(secret)
            if len(form) >= _MIN_FRAGMENT or form == secret
        }
        unique = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, unique))) if unique else None

    @classmethod
    def from_env(cls, env: Mapping[str, str], settings: Settings | None = None) -> Redactor:
        return cls(secrets_of(env, settings.redis_url if settings else None))

    def __call__(self, text: str) -> str:
        text = _URL_PASSWORD.sub(r"\1:***@", text)
        text = _QUERY_PASSWORD.sub(r"\1***", text)
        return self._pattern.sub("***", text) if self._pattern else text

    def tree(self, value: Any) -> Any:
        """``value`` with every string inside it redacted (before JSON escapes them)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {self(str(k)): self.tree(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.tree(v) for v in value]
        return value


_lock = threading.Lock()
_current: tuple[tuple[str, ...], Redactor] | None = None


def process_redactor() -> Redactor:
    """The redactor for this process's environment (rebuilt when its secrets change)."""
    global _current
    secrets = tuple(sorted(secrets_of(os.environ)))
    with _lock:
        if _current is None or _current[0] != secrets:
            _current = (secrets, Redactor(secrets))
        return _current[1]


def scrub(text: str) -> str:
    """``text`` without this process's secrets, in any of their encodings."""
    return process_redactor()(text)


def scrub_tree(value: Any) -> Any:
    """``value`` with every string inside it scrubbed."""
    return process_redactor().tree(value)


class LogRedactor(logging.Filter):
    """Redacts each record a handler emits: its message, and its traceback's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


_LOG_REDACTOR = LogRedactor()


def redact_logs(*loggers: str) -> None:
    """Put the redactor on every handler of the root logger (and of ``loggers``), and on
    the handler Python falls back to when there is none."""
    handlers = [h for name in ("", *loggers) for h in logging.getLogger(name or None).handlers]
    for handler in [*handlers, logging.lastResort]:
        if handler is not None:
            handler.addFilter(_LOG_REDACTOR)
