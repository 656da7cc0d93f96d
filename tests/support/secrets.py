"""Made-up secrets for the redaction tests, and an environment that carries them."""

from __future__ import annotations

API_KEY = "sk-ant-api03-very-secret-key"
GH_TOKEN = "ghp_0123456789abcdef"
DB_PASSWORD = "correct-horse-battery"
REDIS_PASSWORD = "redis-pass-4242"
SECRET_ENV = {
    "ANTHROPIC_API_KEY": API_KEY,
    "GITHUB_TOKEN": GH_TOKEN,
    "MY_DB_PASSWORD_VALUE": DB_PASSWORD,
    "HOME": "/home/someone",
    "EDITOR": "vim-editor",
}
SECRET = "tests-task-signing-key-0123456789"
