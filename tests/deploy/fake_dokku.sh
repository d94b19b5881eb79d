#!/usr/bin/env bash
# A stand-in for the `dokku` CLI, for testing infra/dokku/bootstrap.sh without a Dokku server.
#
# It implements only the subcommands bootstrap.sh calls, with Dokku's conventions: `*:exists`,
# `*:linked` and `plugin:installed` exit 1 for "no"; `*:report <app> --flag` prints the value;
# `config:get` exits 1 for an unset key; creating what exists, linking twice, or linking under
# a variable the app already has fails (as dokku-postgres refuses an alias already set);
# `storage:ensure-directory --chown heroku` chowns to 1000:1000. State is a directory tree under
# $FAKE_DOKKU_STATE; every call is appended to $FAKE_DOKKU_LOG as "R|M<TAB>arg<TAB>arg...".
# Unknown subcommands exit 3, so a typo in the script fails its test instead of passing.
# Written in bash, not Python: bootstrap makes ~200 calls per run and each must start fast.
set -euo pipefail

S="${FAKE_DOKKU_STATE:?}"
cmd="${1:-}"
shift || true

case "$cmd" in
  version | plugin:installed | apps:exists | *:exists | *:linked | *:report | storage:list | config:get | letsencrypt:active) kind=R ;;
  *) kind=M ;;
esac
{
  printf '%s' "$kind"
  printf '\t%s' "$cmd" "$@"
  printf '\n'
} >>"${FAKE_DOKKU_LOG:?}"
mkdir -p "$S/plugins" "$S/services" "$S/apps"

fail() {
  printf ' !     %s\n' "$1" >&2
  exit "${2:-1}"
}
need_app() { [ -d "$S/apps/$1" ] || fail "App $1 does not exist"; }

case "$cmd" in
  version) echo "${FAKE_DOKKU_VERSION:-dokku version 0.35.12}" ;;
  plugin:installed) [ -f "$S/plugins/$1" ] || exit 1 ;;
  plugin:install)
    name=""
    while [ $# -gt 0 ]; do
      [ "$1" = --name ] && name="$2"
      shift
    done
    touch "$S/plugins/$name"
    ;;
  postgres:* | redis:* | rabbitmq:*)
    plugin="${cmd%%:*}"
    verb="${cmd#*:}"
    [ -f "$S/plugins/$plugin" ] || fail "$cmd is not a dokku command" 3
    dir="$S/services/$plugin/$1"
    case "$verb" in
      exists) [ -d "$dir" ] || exit 1 ;;
      create)
        [ ! -d "$dir" ] || fail "$plugin service $1 already exists"
        mkdir -p "$dir/links"
        ;;
      linked) [ -f "$dir/links/$2" ] || exit 1 ;;
      link)
        service="$1" app="$2"
        shift 2
        [ -d "$dir" ] || fail "$plugin service $service does not exist"
        need_app "$app"
        [ ! -f "$dir/links/$app" ] || fail "Already linked"
        case "$plugin" in postgres) var=DATABASE ;; redis) var=REDIS ;; rabbitmq) var=RABBITMQ ;; esac
        while [ $# -gt 0 ]; do
          [ "$1" = --alias ] && var="$2"
          shift
        done
        var="${var}_URL"
        [ ! -f "$S/apps/$app/config/$var" ] || fail "$var is already set on $app"
        printf '%s://%s' "$plugin" "$service" >"$S/apps/$app/config/$var"
        echo "$var" >"$dir/links/$app"
        ;;
      *) fail "$cmd is not a dokku command" 3 ;;
    esac
    ;;
  apps:exists) [ -d "$S/apps/$1" ] || exit 1 ;;
  apps:create)
    [ ! -d "$S/apps/$1" ] || fail "Name is already taken: $1"
    mkdir -p "$S/apps/$1/props" "$S/apps/$1/config"
    : >"$S/apps/$1/storage"
    ;;
  ps:report)
    need_app "$1"
    if [ "$2" = --deployed ]; then
      if [ -f "$S/apps/$1/deployed" ]; then echo true; else echo false; fi
    else
      cat "$S/apps/$1/props/$2" 2>/dev/null || true
    fi
    ;;
  *:report)
    need_app "$1"
    cat "$S/apps/$1/props/$2" 2>/dev/null || true
    ;;
  domains:set)
    need_app "$1"
    app="$1"
    shift
    echo "$*" >"$S/apps/$app/props/--domains-app-vhosts"
    ;;
  builder:set | builder-dockerfile:set | app-json:set | git:set | ps:set)
    need_app "$1"
    case "$cmd:$2" in
      builder:set:selected) flag=--builder-selected ;;
      builder-dockerfile:set:dockerfile-path) flag=--builder-dockerfile-dockerfile-path ;;
      app-json:set:appjson-path) flag=--app-json-appjson-path ;;
      git:set:deploy-branch) flag=--git-deploy-branch ;;
      ps:set:procfile-path | ps:set:stop-timeout-seconds) flag="--ps-$2" ;;
      *) fail "Invalid property $2 for $cmd" 3 ;;
    esac
    echo "$3" >"$S/apps/$1/props/$flag"
    ;;
  ports:add)
    need_app "$1"
    app="$1"
    shift
    current="$(cat "$S/apps/$app/props/--ports-map" 2>/dev/null || true)"
    echo "${current:+$current }$*" >"$S/apps/$app/props/--ports-map"
    ;;
  storage:ensure-directory)
    chown_to=herokuish name=""
    while [ $# -gt 0 ]; do
      case "$1" in
        --chown)
          chown_to="$2"
          shift
          ;;
        *) name="$1" ;;
      esac
      shift
    done
    mkdir -p "${DOKKU_STORAGE_ROOT:?}/$name"
    case "$chown_to" in
      heroku) chown 1000:1000 "$DOKKU_STORAGE_ROOT/$name" ;;
      herokuish) chown 32767:32767 "$DOKKU_STORAGE_ROOT/$name" ;;
      paketo) chown 2000:2000 "$DOKKU_STORAGE_ROOT/$name" ;;
      root) chown 0:0 "$DOKKU_STORAGE_ROOT/$name" ;;
    esac
    ;;
  storage:list)
    need_app "$1"
    echo "=====> $1 volume bind-mounts:"
    sed 's/^/       /' "$S/apps/$1/storage"
    ;;
  storage:mount)
    need_app "$1"
    ! grep -qxF "$2" "$S/apps/$1/storage" || fail "Mount path already exists."
    echo "$2" >>"$S/apps/$1/storage"
    ;;
  config:get)
    need_app "$1"
    [ -f "$S/apps/$1/config/$2" ] || exit 1
    cat "$S/apps/$1/config/$2"
    echo
    ;;
  config:set)
    encoded=0 app=""
    while [ $# -gt 0 ]; do
      case "$1" in
        --encoded) encoded=1 ;;
        --no-restart) ;;
        --*) fail "unknown flag $1" 3 ;;
        *)
          if [ -z "$app" ]; then
            app="$1"
            need_app "$app"
          else
            key="${1%%=*}" value="${1#*=}"
            if [ "$encoded" = 1 ]; then
              printf '%s' "$value" | base64 -d >"$S/apps/$app/config/$key"
            else
              printf '%s' "$value" >"$S/apps/$app/config/$key"
            fi
          fi
          ;;
      esac
      shift
    done
    ;;
  letsencrypt:active)
    need_app "$1"
    if [ -f "$S/apps/$1/tls" ]; then echo true; else echo false; fi
    ;;
  letsencrypt:set) echo "${*: -1}" >"$S/letsencrypt-email" ;;
  letsencrypt:enable)
    need_app "$1"
    [ -f "$S/letsencrypt-email" ] || fail "email not set"
    touch "$S/apps/$1/tls"
    echo "$(cat "$S/apps/$1/props/--ports-map") https:443:5000" >"$S/apps/$1/props/--ports-map"
    ;;
  letsencrypt:cron-job) touch "$S/cron" ;;
  *) fail "$cmd is not a dokku command (the fake implements only what bootstrap.sh uses)" 3 ;;
esac
