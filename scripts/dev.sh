#!/usr/bin/env bash
# Starts the whole fleet locally: installs what is missing, starts PostgreSQL, Redis and
# RabbitMQ, applies every service's migrations, then runs the seven services (and, for any
# provider without a key, the local sandbox) under one process manager (honcho). Ctrl-C stops all.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"

mode=$(.venv/bin/python scripts/fleet_env.py | tee /dev/stderr | tail -n1)
procfile=.local/Procfile
if [ "$mode" = "sandbox" ]; then cp Procfile.dev "$procfile"; else grep -v '^sandbox:' Procfile.dev > "$procfile"; fi

set -a
# shellcheck disable=SC1091
. .local/fleet.env
set +a
# The services, their ports and databases come from the fleet manifest (shared/fleet.py);
# Procfile.dev is generated from it (python -m shared.fleet generate).
.venv/bin/python -m shared.fleet check
for svc in $(.venv/bin/python -m shared.fleet names); do
  .venv/bin/python -m shared.migrate "$svc"
done

echo "[fleet] starting; once up:"
.venv/bin/python -m shared.fleet urls
echo "  health of all: for u in \$(.venv/bin/python -m shared.fleet urls | awk '{print \$2}'); do curl -s \$u/health/ready; echo; done"
exec .venv/bin/honcho start -f "$procfile" -e .local/fleet.env
