"""Redaction: secret values (API keys, tokens, passwords) replaced by ``***`` before text
leaves bdp, in transcripts, logs and notifications.

The secrets are the values of environment variables whose names say they are secret, and
the password of the Redis URL; matching is by value, so an agent that runs ``env`` cannot
leak them through what bdp writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from bdp.config import Settings

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]*):([^@/\s]+)@")
_MIN_SECRET = 6


def is_secret_name(name: str) -> bool:
    """True for variable names that say they hold a secret (KEY, TOKEN, PASSWORD, ...)."""
    return bool(_SECRET_NAME.search(name))


class Redactor:
    """Replaces known secret values with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        unique = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, unique))) if unique else None

    @classmethod
    def from_env(cls, env: Mapping[str, str], settings: Settings) -> Redactor:
        secrets = [value for name, value in env.items() if is_secret_name(name)]
        match = _URL_PASSWORD.search(settings.redis_url or "")
        return cls([*secrets, *([match.group(2)] if match else [])])

    def __call__(self, text: str) -> str:
        text = _URL_PASSWORD.sub(r"\1:***@", text)
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
