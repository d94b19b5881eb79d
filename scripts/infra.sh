#!/usr/bin/env bash
# Start real PostgreSQL, Redis and RabbitMQ from the OS packages and create the databases, and
# Azurite (Azure Blob Storage's emulator, npm, pinned in infra/azurite/) for Media's blobs.
# Idempotent: a second run finds everything up and says so. apt-get installs what is missing
# (as root, or through sudo).
set -euo pipefail

PG_PASSWORD="${PG_PASSWORD:-postgres}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The fleet manifest (shared/fleet.py, standard library only) names the databases.
FLEET_PY="$ROOT/.venv/bin/python"
[ -x "$FLEET_PY" ] || FLEET_PY="${PYTHON:-python3}"
fleet() { (cd "$ROOT" && "$FLEET_PY" -m shared.fleet "$@"); }
mapfile -t DATABASES < <(fleet databases)
[ ${#DATABASES[@]} -gt 0 ] || { echo "[infra] shared/fleet.py named no databases" >&2; exit 1; }

say() { printf '[infra] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt-get)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# PostgreSQL: the Debian cluster, password auth on 127.0.0.1.
pg_version=$(pg_lsclusters -h | awk 'NR==1{print $1}')
pg_cluster=$(pg_lsclusters -h | awk 'NR==1{print $2}')
if [ -z "$pg_version" ]; then
  pg_version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
  pg_cluster=main
  as_root pg_createcluster "$pg_version" "$pg_cluster" >/dev/null
fi
if pg_lsclusters -h | awk -v v="$pg_version" -v c="$pg_cluster" '$1==v && $2==c {print $4}' | grep -q online; then
  say "postgresql $pg_version/$pg_cluster already running"
else
  as_root pg_ctlcluster "$pg_version" "$pg_cluster" start
  say "postgresql $pg_version/$pg_cluster started"
fi
as_root su postgres -c "psql -qtAc \"ALTER USER postgres PASSWORD '$PG_PASSWORD'\"" >/dev/null
# More connections than the default 100: seven services, their pools and the test suite.
if [ "$(as_root su postgres -c "psql -qtAc 'SHOW max_connections'")" != "400" ]; then
  as_root su postgres -c "psql -qtAc 'ALTER SYSTEM SET max_connections = 400'" >/dev/null
  as_root pg_ctlcluster "$pg_version" "$pg_cluster" restart
  say "postgresql restarted with max_connections = 400"
fi
for db in "${DATABASES[@]}"; do
  if as_root su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='$db'\"" | grep -q 1; then
    :
  else
    as_root su postgres -c "createdb $db"
    say "created database $db"
  fi
done

# Redis.
if redis-cli -h 127.0.0.1 ping 2>/dev/null | grep -q PONG; then
  say "redis already running"
else
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  say "redis started"
fi

# RabbitMQ, with the management API (used by the tests to make a vhost per run).
if as_root rabbitmqctl -q status >/dev/null 2>&1; then
  say "rabbitmq already running"
else
  as_root rabbitmq-plugins --offline enable rabbitmq_management >/dev/null 2>&1 || true
  as_root sh -c 'rabbitmq-server > /var/log/rabbitmq/foreground.log 2>&1 &'
  say "rabbitmq starting"
fi
as_root rabbitmqctl -q wait --timeout 60 /var/lib/rabbitmq/mnesia/rabbit@"$(hostname -s)".pid >/dev/null 2>&1 \
  || as_root rabbitmqctl -q await_startup >/dev/null
if ! as_root rabbitmq-plugins -q is_enabled rabbitmq_management >/dev/null 2>&1; then
  as_root rabbitmq-plugins -q enable rabbitmq_management >/dev/null
fi
for _ in $(seq 100); do curl -sf -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null && break; sleep 0.2; done
say "rabbitmq ready (amqp 5672, management 15672)"

# Azurite: the blob service only, on loopback, data under .local/azurite/data. Installed with
# `npm ci` from infra/azurite/package-lock.json into .local/azurite (again when the lockfile
# changes). --skipApiVersionCheck: azure-storage-blob sends a newer x-ms-version than it knows.
# --disableTelemetry: Azurite otherwise collects usage telemetry (on by default) from every dev and CI run.
AZURITE_DIR="$ROOT/.local/azurite"
AZURITE_PORT="${AZURITE_BLOB_PORT:-10000}"
AZURITE_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
mkdir -p "$AZURITE_DIR/data"
if ! cmp -s "$ROOT/infra/azurite/package-lock.json" "$AZURITE_DIR/package-lock.json" \
    || [ ! -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ]; then
  cp "$ROOT/infra/azurite/package.json" "$ROOT/infra/azurite/package-lock.json" "$AZURITE_DIR/"
  (cd "$AZURITE_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  say "azurite installed ($AZURITE_DIR/node_modules)"
fi
azurite_up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AZURITE_PORT/devstoreaccount1?comp=list")" != "000" ]; }
if azurite_up; then
  say "azurite already running"
else
  nohup "$AZURITE_DIR/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" \
    --location "$AZURITE_DIR/data" --skipApiVersionCheck --disableTelemetry --silent >"$AZURITE_DIR/azurite.log" 2>&1 &
  for _ in $(seq 100); do azurite_up && break; sleep 0.1; done
  azurite_up || { echo "[infra] azurite did not start; see $AZURITE_DIR/azurite.log" >&2; exit 1; }
  say "azurite started (blob $AZURITE_PORT)"
fi

echo "[infra] connection settings:"
fleet database-env "postgresql://postgres:${PG_PASSWORD}@127.0.0.1:5432"
cat <<ENV
REDIS_URL=redis://127.0.0.1:6379/0
RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/%2F
AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$AZURITE_KEY;BlobEndpoint=http://127.0.0.1:$AZURITE_PORT/devstoreaccount1;
ENV
