#!/usr/bin/env bash
# infra/dokku/bootstrap.sh: set up (or bring back in line) a Dokku server for the SceneXtras fleet.
#
#   sudo infra/dokku/bootstrap.sh --env-file /root/scenextras.env \
#        --domain api.scenextras.com --letsencrypt-email ops@scenextras.com
#   infra/dokku/bootstrap.sh --env-file FILE --dry-run     # print what it would change, change nothing
#
# Run it on the Dokku server (plugin installs need root). Every step looks first and acts only when
# the server differs from what is wanted, printing one line per step: "ok" (already so), "changed",
# "skipped" or "FAILED". Re-running it is safe and is how a changed env file reaches the apps.
# With --dry-run and no dokku on this machine, it prints the full plan for a blank server.
#
# Steps: plugins (postgres, redis, rabbitmq, letsencrypt); the shared services scenextras-db,
# scenextras-cache, scenextras-queue and the service databases chat-db, media-db, community-db,
# analytics-db; the seven apps (domain, Dockerfile builder with <svc>_service/Dockerfile from the
# repository root, app.json and Procfile paths, deploy branch, port 80 -> 5000, stop timeout);
# links (core database as DATABASE_URL, the service's own database as <SERVICE>_DATABASE_URL,
# REDIS_URL, RABBITMQ_URL); the content service's storage mount; configuration from the env file
# (never committed; infra/dokku/scenextras.env.example lists every variable); Let's Encrypt for
# the apps that have been deployed once, and its renewal cron job.
#
# Options:
#   --env-file FILE          secrets and settings, INI-style sections [all] and [<app>] (required)
#   --domain DOMAIN          API domain; apps answer on <sub>.DOMAIN (default api.scenextras.com)
#   --letsencrypt-email ADDR email for Let's Encrypt (needed once, when the first app gets TLS)
#   --skip-letsencrypt       leave TLS alone
#   --dry-run                change nothing; print the commands that would run
# Environment: DOKKU (the dokku command, default "dokku"), DOKKU_STORAGE_ROOT (default
# /var/lib/dokku/data/storage).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/dokku/fleet.sh
. "$HERE/fleet.sh"

DOKKU="${DOKKU:-dokku}"
STORAGE_ROOT="${DOKKU_STORAGE_ROOT:-/var/lib/dokku/data/storage}"
DOMAIN="api.scenextras.com"
ENV_FILE=""
LE_EMAIL=""
SKIP_LE=0
DRY_RUN=0
STOP_TIMEOUT=30
MIN_DOKKU="0.31.0"
APP_UID=1000

usage() { sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() {
  printf 'bootstrap: %s\n' "$*" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --env-file)
      [ $# -ge 2 ] || die "--env-file needs a path"
      ENV_FILE="$2"
      shift
      ;;
    --env-file=*) ENV_FILE="${1#*=}" ;;
    --domain)
      [ $# -ge 2 ] || die "--domain needs a value"
      DOMAIN="$2"
      shift
      ;;
    --domain=*) DOMAIN="${1#*=}" ;;
    --letsencrypt-email)
      [ $# -ge 2 ] || die "--letsencrypt-email needs an address"
      LE_EMAIL="$2"
      shift
      ;;
    --letsencrypt-email=*) LE_EMAIL="${1#*=}" ;;
    --skip-letsencrypt) SKIP_LE=1 ;;
    -n | --dry-run) DRY_RUN=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

[ -n "$ENV_FILE" ] || die "--env-file is required (start from infra/dokku/scenextras.env.example)"
[ -f "$ENV_FILE" ] || die "env file $ENV_FILE does not exist"

PROBE=1
command -v "$DOKKU" >/dev/null 2>&1 || PROBE=0
if [ "$PROBE" = 0 ] && [ "$DRY_RUN" = 0 ]; then
  die "'$DOKKU' not found: run this on the Dokku server (or use --dry-run to see the plan)"
fi

N_CHANGED=0
N_OK=0
N_SKIPPED=0
N_FAILED=0

report() { printf '%-9s %s\n' "$1" "$2"; }
ok() {
  report "ok" "$1"
  N_OK=$((N_OK + 1))
}
skipped() {
  report "skipped" "$1"
  N_SKIPPED=$((N_SKIPPED + 1))
}

# A read-only dokku call. Without dokku (dry run on a workstation) every probe "fails", so the
# plan is the one for a blank server.
probe() {
  [ "$PROBE" = 1 ] || return 1
  "$DOKKU" "$@" 2>/dev/null
}
probe_value() {
  [ "$PROBE" = 1 ] || return 0
  "$DOKKU" "$@" 2>/dev/null | tr -s '[:space:]' ' ' | sed 's/^ //; s/ $//' || true
}

# change DESCRIPTION SHOWN_COMMAND -- dokku-arguments...
# Runs a mutating dokku command (or prints it in a dry run). SHOWN_COMMAND is what is printed,
# so secret values never reach the terminal or a log.
change() {
  local desc="$1" shown="$2"
  shift 3
  if [ "$DRY_RUN" = 1 ]; then
    report "would" "$desc: $shown"
    N_CHANGED=$((N_CHANGED + 1))
    return 0
  fi
  if "$DOKKU" "$@"; then
    report "changed" "$desc: $shown"
    N_CHANGED=$((N_CHANGED + 1))
  else
    report "FAILED" "$desc: $shown"
    N_FAILED=$((N_FAILED + 1))
    return 1
  fi
}

# Like change, but the run stops on failure: later steps depend on this one.
must() {
  change "$@" || {
    summary
    exit 1
  }
}

summary() {
  printf '\nbootstrap: %d changed%s, %d already in place, %d skipped, %d failed\n' \
    "$N_CHANGED" "$([ "$DRY_RUN" = 1 ] && printf ' (dry run: would change)')" "$N_OK" "$N_SKIPPED" "$N_FAILED"
}

# --- the env file ---------------------------------------------------------------------------
# INI-style: [all] applies to every app, [chat-service] (or [chat]) to one; KEY=VALUE lines,
# values taken literally (optionally in matching quotes), never executed; empty values are skipped.
# Parsed into ENTRIES: one "scope key base64(value)" per line.
ENTRIES=""
parse_env_file() {
  local line section="" lineno=0 key value scope
  if [ "$(uname)" = Linux ] && [ -n "$(find "$ENV_FILE" -perm /044 2>/dev/null)" ]; then
    printf 'bootstrap: warning: %s is readable by other users; chmod 600 it\n' "$ENV_FILE" >&2
  fi
  while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    line="${line%$'\r'}"
    case "$line" in
      "" | \#* | \;*) continue ;;
    esac
    if [[ "$line" =~ ^[[:space:]]*\[([A-Za-z_-]+)\][[:space:]]*$ ]]; then
      section="${BASH_REMATCH[1]}"
      if [ "$section" != all ]; then
        section="$(sx_normalize "$section")"
        sx_is_service "$section" || die "$ENV_FILE:$lineno: unknown section [${BASH_REMATCH[1]}]; use [all] or an app name"
      fi
      continue
    fi
    line="${line#export }"
    [[ "$line" =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || die "$ENV_FILE:$lineno: not KEY=VALUE"
    key="${BASH_REMATCH[1]}"
    value="${BASH_REMATCH[2]}"
    [ -n "$section" ] || die "$ENV_FILE:$lineno: $key comes before any [section]"
    case "$key" in
      PORT | DATABASE_URL | *_DATABASE_URL | REDIS_URL | RABBITMQ_URL | DOKKU_*)
        die "$ENV_FILE:$lineno: $key is set by Dokku (links, ports), not by the env file"
        ;;
    esac
    if [[ "$value" =~ ^\"(.*)\"$ ]] || [[ "$value" =~ ^\'(.*)\'$ ]]; then
      value="${BASH_REMATCH[1]}"
    fi
    [ -n "$value" ] || continue
    scope="$section"
    ENTRIES="${ENTRIES}${scope} ${key} $(printf '%s' "$value" | base64 | tr -d '\n')"$'\n'
  done <"$ENV_FILE"
}

# The value (base64) a key has for an app: its own section wins over [all].
entry_for() {
  local svc="$1" key="$2" scope k v found=""
  while read -r scope k v; do
    [ -n "$scope" ] || continue
    [ "$k" = "$key" ] || continue
    if [ "$scope" = "$svc" ]; then
      printf '%s\n' "$v"
      return 0
    fi
    [ "$scope" = all ] && found="$v"
  done <<<"$ENTRIES"
  [ -n "$found" ] && printf '%s\n' "$found"
  return 0
}

keys_for() {
  local svc="$1" scope k v
  while read -r scope k v; do
    [ -n "$scope" ] || continue
    if [ "$scope" = all ] || [ "$scope" = "$svc" ]; then printf '%s\n' "$k"; fi
  done <<<"$ENTRIES" | sort -u
}

b64() { printf '%s' "$1" | base64 | tr -d '\n'; }
unb64() { printf '%s' "$1" | base64 -d; }

parse_env_file
for svc in $SX_SERVICES; do
  secret="$(entry_for "$svc" SUPABASE_JWT_SECRET)"
  [ -n "$secret" ] || die "SUPABASE_JWT_SECRET is missing for $(sx_app "$svc") (put it in [all])"
  [ "$(unb64 "$secret" | wc -c)" -ge 32 ] || die "SUPABASE_JWT_SECRET for $(sx_app "$svc") is shorter than 32 characters"
done

printf 'bootstrap: domain %s, env file %s%s\n' "$DOMAIN" "$ENV_FILE" "$([ "$DRY_RUN" = 1 ] && printf ' [dry run]')"

# --- dokku itself -----------------------------------------------------------------------------
if [ "$PROBE" = 1 ]; then
  version="$("$DOKKU" version 2>/dev/null | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true)"
  if [ -n "$version" ] && [ "$(printf '%s\n%s\n' "$MIN_DOKKU" "$version" | sort -V | head -n1)" != "$MIN_DOKKU" ]; then
    die "dokku $version is too old: app.json healthchecks and per-app Dockerfile paths need $MIN_DOKKU or newer"
  fi
  ok "dokku ${version:-(version unknown)}"
fi

# --- plugins ----------------------------------------------------------------------------------
for plugin in postgres redis rabbitmq letsencrypt; do
  if probe plugin:installed "$plugin" >/dev/null; then
    ok "plugin $plugin installed"
  else
    if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
      die "plugin $plugin is missing and installing plugins needs root: sudo $0 ..."
    fi
    url="https://github.com/dokku/dokku-$plugin.git"
    must "plugin $plugin" "dokku plugin:install $url --name $plugin" -- plugin:install "$url" --name "$plugin"
  fi
done

# --- shared services and service databases ----------------------------------------------------
ensure_service() {
  local kind="$1" name="$2"
  if probe "$kind:exists" "$name" >/dev/null; then
    ok "$kind service $name exists"
  else
    must "$kind service $name" "dokku $kind:create $name" -- "$kind:create" "$name"
  fi
}
ensure_service postgres "$SX_CORE_DB"
ensure_service redis "$SX_CACHE"
ensure_service rabbitmq "$SX_QUEUE"
for svc in $SX_SERVICES; do
  db="$(sx_own_db "$svc")"
  [ -z "$db" ] || ensure_service postgres "$db"
done

# --- apps -------------------------------------------------------------------------------------
# ensure_setting APP DESCRIPTION WANTED "report args" -- set args...
ensure_setting() {
  local app="$1" desc="$2" wanted="$3" report_args="$4" current
  shift 5
  # shellcheck disable=SC2086  # report_args is a list of words
  current="$(probe_value $report_args)"
  if [ "$PROBE" = 1 ] && [ "$current" = "$wanted" ]; then
    ok "$app $desc = $wanted"
  else
    must "$app $desc" "dokku $*" -- "$@"
  fi
}

for svc in $SX_SERVICES; do
  app="$(sx_app "$svc")"
  pkg="$(sx_package "$svc")"
  if probe apps:exists "$app" >/dev/null; then
    ok "app $app exists"
  else
    must "app $app" "dokku apps:create $app" -- apps:create "$app"
  fi
  domain="$(sx_subdomain "$svc").$DOMAIN"
  ensure_setting "$app" "domain" "$domain" "domains:report $app --domains-app-vhosts" -- domains:set "$app" "$domain"
  # The repository root has pyproject.toml, which buildpack detection would pick: force the
  # Dockerfile builder and point it at the service's Dockerfile (the build context stays the root).
  ensure_setting "$app" "builder" "dockerfile" "builder:report $app --builder-selected" -- builder:set "$app" selected dockerfile
  ensure_setting "$app" "dockerfile path" "$pkg/Dockerfile" "builder-dockerfile:report $app --builder-dockerfile-dockerfile-path" -- builder-dockerfile:set "$app" dockerfile-path "$pkg/Dockerfile"
  ensure_setting "$app" "app.json path" "$pkg/app.json" "app-json:report $app --app-json-appjson-path" -- app-json:set "$app" appjson-path "$pkg/app.json"
  ensure_setting "$app" "Procfile path" "$pkg/Procfile" "ps:report $app --ps-procfile-path" -- ps:set "$app" procfile-path "$pkg/Procfile"
  ensure_setting "$app" "deploy branch" "$SX_DEPLOY_BRANCH" "git:report $app --git-deploy-branch" -- git:set "$app" deploy-branch "$SX_DEPLOY_BRANCH"
  # uvicorn gets 20 s to finish in-flight requests (Procfile); docker must wait longer than that.
  ensure_setting "$app" "stop timeout" "$STOP_TIMEOUT" "ps:report $app --ps-stop-timeout-seconds" -- ps:set "$app" stop-timeout-seconds "$STOP_TIMEOUT"
  ports="$(probe_value ports:report "$app" --ports-map)"
  if [ "$PROBE" = 1 ] && [[ " $ports " == *" http:80:$SX_CONTAINER_PORT "* ]]; then
    ok "$app port map has http:80:$SX_CONTAINER_PORT"
  else
    must "$app port map" "dokku ports:add $app http:80:$SX_CONTAINER_PORT" -- ports:add "$app" "http:80:$SX_CONTAINER_PORT"
  fi
done

# --- links ------------------------------------------------------------------------------------
# link KIND SERVICE APP [ALIAS]: --no-restart, because config changes are applied by the next
# deploy (or the restart at the end of a config change), not one restart per link.
link() {
  local kind="$1" service="$2" app="$3" alias="${4:-}" args
  if probe "$kind:linked" "$service" "$app" >/dev/null; then
    ok "$kind $service linked to $app${alias:+ as ${alias}_URL}"
    return 0
  fi
  args=("$kind:link" "$service" "$app")
  [ -z "$alias" ] || args+=(--alias "$alias")
  args+=(--no-restart)
  must "link $service -> $app" "dokku ${args[*]}" -- "${args[@]}"
}

for svc in $SX_SERVICES; do
  app="$(sx_app "$svc")"
  # The core database first and without an alias: it is DATABASE_URL for every app (Content's
  # settings require it too, though it keeps its own data in the storage mount).
  link postgres "$SX_CORE_DB" "$app"
  db="$(sx_own_db "$svc")"
  [ -z "$db" ] || link postgres "$db" "$app" "$(sx_own_db_alias "$svc")"
  link redis "$SX_CACHE" "$app"
  link rabbitmq "$SX_QUEUE" "$app"
done

# --- storage for the content service ------------------------------------------------------------
content_app="$(sx_app content)"
storage_dir="$STORAGE_ROOT/$SX_CONTENT_STORAGE"
if [ "$PROBE" = 1 ] && [ -d "$storage_dir" ] && [ "$(stat -c %u "$storage_dir" 2>/dev/null)" = "$APP_UID" ]; then
  ok "storage $storage_dir exists, owned by uid $APP_UID"
else
  must "storage $SX_CONTENT_STORAGE" "dokku storage:ensure-directory --chown heroku $SX_CONTENT_STORAGE" -- storage:ensure-directory --chown heroku "$SX_CONTENT_STORAGE"
fi
mount="$storage_dir:$SX_CONTENT_DATA_DIR"
mounts="$(probe storage:list "$content_app" || true)"
if [[ "$mounts" == *"$mount"* ]]; then
  ok "$content_app mounts $mount"
else
  must "$content_app storage mount" "dokku storage:mount $content_app $mount" -- storage:mount "$content_app" "$mount"
fi

# --- configuration ------------------------------------------------------------------------------
# Defaults first, then [all], then the app's own section. Values are passed base64-encoded
# (config:set --encoded) and never printed.
for svc in $SX_SERVICES; do
  app="$(sx_app "$svc")"
  wanted="ENVIRONMENT $(b64 production)"$'\n'"MIGRATE_ON_START $(b64 0)"$'\n'"LOG_JSON $(b64 1)"
  [ "$svc" != content ] || wanted="$wanted"$'\n'"CONTENT_DATA_DIR $(b64 "$SX_CONTENT_DATA_DIR")"
  while read -r key; do
    [ -n "$key" ] || continue
    wanted="$(printf '%s\n' "$wanted" | grep -v "^$key " || true)"$'\n'"$key $(entry_for "$svc" "$key")"
  done < <(keys_for "$svc")
  to_set=()
  names=()
  unchanged=0
  while read -r key value; do
    [ -n "$key" ] || continue
    if [ "$PROBE" = 1 ] && current="$("$DOKKU" config:get "$app" "$key" 2>/dev/null)" && [ "$(b64 "$current")" = "$value" ]; then
      unchanged=$((unchanged + 1))
    else
      to_set+=("$key=$value")
      names+=("$key")
    fi
  done <<<"$wanted"
  if [ ${#to_set[@]} -eq 0 ]; then
    ok "$app config: $unchanged variable(s) already set"
  else
    must "$app config (${#to_set[@]} to set, $unchanged unchanged)" \
      "dokku config:set --encoded --no-restart $app $(printf '%s=… ' "${names[@]}")" \
      -- config:set --encoded --no-restart "$app" "${to_set[@]}"
  fi
done

# --- TLS ------------------------------------------------------------------------------------------
if [ "$SKIP_LE" = 1 ]; then
  skipped "Let's Encrypt (--skip-letsencrypt)"
else
  email_set=0
  any_tls=0
  for svc in $SX_SERVICES; do
    app="$(sx_app "$svc")"
    if [ "$(probe_value letsencrypt:active "$app")" = true ]; then
      ok "$app has a Let's Encrypt certificate"
      any_tls=1
      continue
    fi
    if [ "$DRY_RUN" = 0 ] && [ "$(probe_value ps:report "$app" --deployed)" != true ]; then
      skipped "$app TLS: not deployed yet; deploy it (./deploy-all.sh), then re-run this script"
      continue
    fi
    if [ "$email_set" = 0 ]; then
      if [ -z "$LE_EMAIL" ]; then
        skipped "$app TLS: no --letsencrypt-email given"
        continue
      fi
      must "Let's Encrypt account" "dokku letsencrypt:set --global email $LE_EMAIL" -- letsencrypt:set --global email "$LE_EMAIL"
      email_set=1
    fi
    # A failed certificate (DNS not pointing here yet) does not stop the others.
    if change "$app TLS" "dokku letsencrypt:enable $app" -- letsencrypt:enable "$app"; then
      any_tls=1
    fi
  done
  if [ "$any_tls" = 1 ]; then
    # Idempotent by design (the plugin replaces its own cron entry); run every time.
    if [ "$DRY_RUN" = 1 ]; then
      report "would" "certificate renewal: dokku letsencrypt:cron-job --add"
    elif "$DOKKU" letsencrypt:cron-job --add >/dev/null; then
      ok "certificate renewal cron job in place"
    else
      report "FAILED" "certificate renewal: dokku letsencrypt:cron-job --add"
      N_FAILED=$((N_FAILED + 1))
    fi
  fi
fi

summary
if [ "$N_FAILED" -gt 0 ]; then
  exit 1
fi
