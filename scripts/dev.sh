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
for svc in auth payment chat media community analytics content; do
  .venv/bin/python -m shared.migrate "$svc"
done

cat <<URLS
[fleet] starting; once up:
  auth       http://127.0.0.1:8005   (docs: /docs)
  chat       http://127.0.0.1:8001
  payment    http://127.0.0.1:8002
  content    http://127.0.0.1:8003
  media      http://127.0.0.1:8004
  community  http://127.0.0.1:8006
  analytics  http://127.0.0.1:8007
  health of all: for p in 8001 8002 8003 8004 8005 8006 8007; do curl -s 127.0.0.1:\$p/health/ready; echo; done
URLS
exec .venv/bin/honcho start -f "$procfile" -e .local/fleet.env
