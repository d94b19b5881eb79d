#!/usr/bin/env bash
# Runs every test: installs what is missing, starts PostgreSQL, Redis and RabbitMQ, lints
# (scripts/lint.sh: ruff check + ruff format --check; a lint error fails the run before pytest
# starts), then pytest. Extra arguments go to pytest (e.g. scripts/test.sh tests/chat -x).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
[ "${SKIP_IMAGES:-0}" = 1 ] || bash "$ROOT/scripts/images.sh"  # SKIP_IMAGES=1: no image check
cd "$ROOT"
[ "${SKIP_LINT:-0}" = 1 ] || bash scripts/lint.sh  # SKIP_LINT=1: no lint (local runs only; CI lints)
set +e
.venv/bin/python -m pytest "$@"
status=$?
[ "$status" -eq 0 ] && { .venv/bin/python scripts/check_mutations.py --after-pytest "$@" || status=$?; }
set -e
if [ "$status" -eq 5 ]; then
  echo "no tests were collected" >&2
  exit 1
fi
exit "$status"
