#!/usr/bin/env bash
# Lint: ruff check + ruff format --check over the tracked Python files (rules: pyproject.toml).
# scripts/test.sh runs this before pytest. To fix what it reports: .venv/bin/ruff format <files>; .venv/bin/ruff check --fix <files>.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUFF="${RUFF:-.venv/bin/ruff}"
mapfile -t files < <(git ls-files -- '*.py')
[ ${#files[@]} -gt 0 ] || { echo "lint: no Python files found (not a git checkout?)" >&2; exit 1; }
status=0
"$RUFF" check --quiet "${files[@]}" || status=1
"$RUFF" format --check --quiet "${files[@]}" || status=1
if [ "$status" -ne 0 ]; then
  echo "lint failed: run .venv/bin/ruff format <files> and .venv/bin/ruff check --fix <files>, fix the rest by hand" >&2
fi
exit "$status"
