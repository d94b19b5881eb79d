# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this file
# The SceneXtras fleet, sourced by infra/dokku/bootstrap.sh (on the Dokku server) and by
# deploy-all.sh (on an operator's machine). Plain functions and `case`, no associative arrays,
# so it also runs under the bash 3.2 that macOS ships, and no Python (the server may have none).
# generated from shared/fleet.py by `python -m shared.fleet generate`; do not edit by hand.

# Deploy order: Auth and Payment first, because their migrations create the shared core tables
# and the atomic quota functions that the other services call.
SX_SERVICES="auth payment chat content media community analytics"

# Shared Dokku services (dokku-postgres, dokku-redis, dokku-rabbitmq).
SX_CORE_DB="scenextras-db"
SX_CACHE="scenextras-cache"
SX_QUEUE="scenextras-queue"

# Where the content service keeps its index on the host (a Dokku storage mount) and in the image.
SX_CONTENT_STORAGE="content-service-data"
SX_CONTENT_DATA_DIR="/app/data"

# The container port: no EXPOSE in the Dockerfiles, so Dokku sets PORT=5000 and proxies 80 -> 5000.
SX_CONTAINER_PORT=5000
SX_DEPLOY_BRANCH="main"

sx_is_service() {
  case "$1" in
    auth | payment | chat | content | media | community | analytics) return 0 ;;
    *) return 1 ;;
  esac
}

# chat, chat_service, chat-service -> chat
sx_normalize() {
  local name="$1"
  name="${name%_service}"
  name="${name%-service}"
  name="${name%/}"
  name="${name%_service}"
  printf '%s\n' "$name"
}

sx_app() { printf '%s-service\n' "$1"; }

sx_package() { printf '%s_service\n' "$1"; }

# The subdomain under the API domain (api.scenextras.com).
sx_subdomain() {
  case "$1" in
    content) printf 'search\n' ;;
    *) printf '%s\n' "$1" ;;
  esac
}

# The service's own database (a dokku-postgres service) and the alias it is linked under, so the
# app sees <ALIAS>_URL next to the core DATABASE_URL. Auth and Payment own tables in the core
# database; Content has no PostgreSQL of its own.
sx_own_db() {
  case "$1" in
    chat | media | community | analytics) printf '%s-db\n' "$1" ;;
    *) printf '\n' ;;
  esac
}

sx_own_db_alias() {
  case "$1" in
    chat) printf 'CHAT_DATABASE\n' ;;
    media) printf 'MEDIA_DATABASE\n' ;;
    community) printf 'COMMUNITY_DATABASE\n' ;;
    analytics) printf 'ANALYTICS_DATABASE\n' ;;
    *) printf '\n' ;;
  esac
}
