# Local aliases; CI runs `bash .ci/run`, which is `make lint test` after installing.
.PHONY: lint test check

lint:
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy
	uv run lint-imports

test:
	uv run pytest

check: lint test
