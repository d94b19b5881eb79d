#!/usr/bin/env bash
# Installs what is missing on a fresh Debian machine with Python 3.11+: the OS packages the
# project needs (scripts/apt-packages.txt), the virtualenv with the pinned dependencies, and the
# local infrastructure (scripts/infra.sh). Sourced by dev.sh and test.sh; safe to run again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '[bootstrap] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# OS packages (one per line in apt-packages.txt; comments with #).
wanted=()
# A second word names a command that satisfies the line when it is already on PATH (node and npm
# may come from NodeSource's nodejs, which bundles npm and conflicts with Debian's npm package).
while read -r pkg provides _; do
  [ -z "$pkg" ] || [ "${pkg:0:1}" = "#" ] && continue
  [ -n "${provides:-}" ] && [ "${provides:0:1}" != "#" ] && command -v "$provides" >/dev/null 2>&1 && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || wanted+=("$pkg")
done < scripts/apt-packages.txt
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || wanted+=(python3-venv)
if [ ${#wanted[@]} -gt 0 ]; then
  say "installing OS packages: ${wanted[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${wanted[@]}" >/dev/null
fi

# Virtualenv, reinstalled only when pyproject.toml, setup.py or the search engine's compiled
# kernel (content_service/engine/_kernel.c, built in place by the editable install) changes.
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.pyproject.sha256"
# The images' requirements.txt files pin every package a service runs with; they constrain the
# venv too, so the tests run exactly the versions the images install (tests/deploy/test_requirements.py).
constraints=(shared/requirements.txt *_service/requirements.txt)
want=$(cat pyproject.toml setup.py content_service/engine/_kernel.c "${constraints[@]}" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
   || ! compgen -G "content_service/engine/_kernel.cpython-*.so" >/dev/null; then
  say "installing Python dependencies (pinned in pyproject.toml) and building the search kernel"
  .venv/bin/python -m pip install -q --upgrade pip
  pins=$(mktemp); sed -e 's/\[[^]]*\]//' -e 's/ *#.*//' "${constraints[@]}" | grep -v '^$' | sort -u > "$pins"
  .venv/bin/python -m pip install -q -e '.[test]' -c "$pins"
  rm -f "$pins"
  echo "$want" > "$stamp"
fi

bash scripts/infra.sh
