"""What the Claude API's errors mean for a run: retry, pause the queue, or give up.

API errors reach the SDK as ``AssistantMessage.error`` (a short code) with the API's text in
the message, not as exceptions; this module turns them into bdp's session errors, and reads
a usage limit's reset time out of the text so the queue pauses for just as long.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

from bdp.agent.session import PermanentSessionError, TransientSessionError, UsageLimitError

#: AssistantMessage.error values that a later attempt may not hit.
TRANSIENT_ERRORS = frozenset({"server_error", "unknown"})
#: The CLI has already retried a rate limit: pause the queue rather than retry again.
RATE_LIMITED = "rate_limit"
#: What the API says when a conversation no longer fits the model's context window.
CONTEXT_FULL = "prompt is too long"
#: What to do about an error no retry fixes.
FIXES = {
    "authentication_failed": "check ANTHROPIC_API_KEY (or the credentials the CLI uses)",
    "billing_error": "check the account's billing and credit",
    "invalid_request": "check BDP_MODEL and the other agent settings",
}
#: A reset time in an API error: an epoch after ``|`` (the CLI's usage-limit text), or an
#: ISO-8601 time after "reset(s)".
_EPOCH = re.compile(r"\|(\d{10})\b")
_ISO = re.compile(
    r"resets?\D{0,12}(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)"
)


def raise_for(api_error: str | None, limit_reset: float | None) -> None:
    """Raise the session error an API error code stands for; nothing for None."""
    if api_error is None:
        return
    if api_error == RATE_LIMITED:
        raise UsageLimitError("the API account is rate- or usage-limited", limit_reset)
    if api_error in TRANSIENT_ERRORS:
        raise TransientSessionError(f"API error: {api_error}")
    fix = FIXES.get(api_error, "see the run's log")
    raise PermanentSessionError(f"API error: {api_error}; {fix}")


def reset_time(text: str, now: float | None = None) -> float | None:
    """The reset time an API error message gives, as an epoch; None when it gives none."""
    now = time.time() if now is None else now
    if match := _EPOCH.search(text):
        epoch = float(match.group(1))
    elif match := _ISO.search(text):
        try:
            epoch = datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    else:
        return None
    return epoch if epoch > now else None
