#!/usr/bin/env bash
# deploy-all.sh: deploy SceneXtras services to Dokku by pushing the monorepo to each app's remote.
#
#   ./deploy-all.sh                      all seven, in order (auth, payment, chat, content, ...)
#   ./deploy-all.sh chat payment         only these (chat, chat_service and chat-service all work)
#   ./deploy-all.sh --changed            only services whose <svc>_service/ or shared/ changed
#                                        since the commit that app last received
#   ./deploy-all.sh --dry-run [...]      print what would be pushed, push nothing
#   ./deploy-all.sh --ref v1.4.2 chat    deploy another commit (add --force to go back in history)
#
# Each app builds its image from the repository root with its own Dockerfile
# (infra/dokku/bootstrap.sh sets builder-dockerfile dockerfile-path per app), so the whole
# monorepo is pushed and Dokku picks the service. The run stops at the first failed push and
# ends with a per-service summary; the exit status is non-zero if anything failed.
#
# Environment:
#   DOKKU_HOST             the Dokku server (required with the default remote template)
#   DOKKU_USER             ssh user, default "dokku"
#   DOKKU_REMOTE_TEMPLATE  remote URL with {user}, {host} and {app}; default "{user}@{host}:{app}".
#                          Point it elsewhere (e.g. /srv/git/{app}.git) for a staging mirror.
#   DOKKU_DEPLOY_BRANCH    branch Dokku deploys, default "main" (bootstrap sets git deploy-branch)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/dokku/fleet.sh
. "$ROOT/infra/dokku/fleet.sh"

usage() {
  sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
  printf 'deploy-all: %s\n' "$*" >&2
  exit 2
}

DRY_RUN=0
CHANGED=0
FORCE=0
REF="HEAD"
REQUESTED=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n | --dry-run) DRY_RUN=1 ;;
    -c | --changed) CHANGED=1 ;;
    -f | --force) FORCE=1 ;;
    --ref)
      [ $# -ge 2 ] || die "--ref needs a commit, tag or branch"
      REF="$2"
      shift
      ;;
    --ref=*) REF="${1#--ref=}" ;;
    -h | --help)
      usage
      exit 0
      ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
      name="$(sx_normalize "$1")"
      sx_is_service "$name" || die "unknown service '$1'; one of: $SX_SERVICES"
      case " $REQUESTED " in
        *" $name "*) ;;
        *) REQUESTED="$REQUESTED $name" ;;
      esac
      ;;
  esac
  shift
done

# Selected services, always in fleet order.
SELECTED=""
for svc in $SX_SERVICES; do
  if [ -z "$REQUESTED" ]; then
    SELECTED="$SELECTED $svc"
  else
    case " $REQUESTED " in *" $svc "*) SELECTED="$SELECTED $svc" ;; esac
  fi
done

DEFAULT_TEMPLATE='{user}@{host}:{app}'
TEMPLATE="${DOKKU_REMOTE_TEMPLATE:-$DEFAULT_TEMPLATE}"
BRANCH="${DOKKU_DEPLOY_BRANCH:-$SX_DEPLOY_BRANCH}"
DUSER="${DOKKU_USER:-dokku}"
case "$TEMPLATE" in
  *'{host}'*) [ -n "${DOKKU_HOST:-}" ] || die "DOKKU_HOST is not set (the Dokku server, e.g. DOKKU_HOST=dokku.scenextras.com)" ;;
esac

remote_url() {
  local url="$TEMPLATE" user='{user}' host='{host}' app='{app}'
  url="${url//"$user"/$DUSER}"
  url="${url//"$host"/${DOKKU_HOST:-}}"
  url="${url//"$app"/$1}"
  printf '%s\n' "$url"
}

cd "$ROOT"
git rev-parse --git-dir >/dev/null 2>&1 || die "$ROOT is not a git repository"
COMMIT="$(git rev-parse --verify --quiet "${REF}^{commit}")" || die "no commit '$REF'"
SHORT="$(git rev-parse --short "$COMMIT")"

# What is pushed is the commit, not the working tree: say so when they differ.
if [ "$REF" = "HEAD" ]; then
  paths=(shared)
  for svc in $SELECTED; do paths+=("$(sx_package "$svc")"); done
  dirty="$(git status --porcelain -- "${paths[@]}" 2>/dev/null || true)"
  if [ -n "$dirty" ]; then
    printf 'deploy-all: warning: uncommitted changes are NOT deployed (only commit %s is):\n%s\n' "$SHORT" "$dirty" >&2
  fi
fi

printf 'deploy-all: commit %s (%s)%s%s\n' "$SHORT" "$(git log -1 --format=%s "$COMMIT")" \
  "$([ "$DRY_RUN" = 1 ] && printf ' [dry run]')" "$([ "$CHANGED" = 1 ] && printf ' [changed only]')"

SUMMARY=""
FAILED=0
add_summary() { SUMMARY="${SUMMARY}$(printf '%-10s %-18s %-14s %s' "$1" "$(sx_app "$1")" "$2" "$3")"$'\n'; }

# --changed: compare with the commit the app's remote holds on the deploy branch.
# Prints "deploy <reason>" or "skip <reason>"; returns non-zero if the remote cannot be read.
change_decision() {
  local svc="$1" url="$2" last files count
  if ! last="$(git ls-remote "$url" "refs/heads/$BRANCH" 2>/dev/null)"; then
    return 1
  fi
  last="${last%%[[:space:]]*}"
  if [ -z "$last" ]; then
    printf 'deploy never deployed\n'
  elif [ "$last" = "$COMMIT" ]; then
    printf 'skip already at %s\n' "$SHORT"
  elif ! git cat-file -e "${last}^{commit}" 2>/dev/null; then
    printf 'deploy last deployed commit %s is unknown here\n' "${last:0:7}"
  else
    files="$(git diff --name-only "$last" "$COMMIT" -- "$(sx_package "$svc")/" shared/)"
    if [ -z "$files" ]; then
      printf 'skip unchanged since %s\n' "${last:0:7}"
    else
      count="$(printf '%s\n' "$files" | wc -l | tr -d ' ')"
      printf 'deploy %s file(s) changed since %s\n' "$count" "${last:0:7}"
    fi
  fi
}

STOPPED=0
for svc in $SELECTED; do
  app="$(sx_app "$svc")"
  if [ "$STOPPED" = 1 ]; then
    add_summary "$svc" "not attempted" "an earlier deploy failed"
    continue
  fi
  url="$(remote_url "$app")"
  reason="requested"
  if [ "$CHANGED" = 1 ]; then
    if ! decision="$(change_decision "$svc" "$url")"; then
      printf '==> %s: cannot read %s\n' "$svc" "$url" >&2
      add_summary "$svc" "FAILED" "cannot read the remote to compare"
      FAILED=1
      STOPPED=1
      continue
    fi
    reason="${decision#* }"
    if [ "${decision%% *}" = "skip" ]; then
      printf '==> %s: skipped (%s)\n' "$svc" "$reason"
      add_summary "$svc" "skipped" "$reason"
      continue
    fi
  fi
  push=(git push)
  [ "$FORCE" = 1 ] && push+=(--force)
  push+=("$url" "$COMMIT:refs/heads/$BRANCH")
  if [ "$DRY_RUN" = 1 ]; then
    printf '==> %s: would run: %s   (%s)\n' "$svc" "${push[*]}" "$reason"
    add_summary "$svc" "would deploy" "$reason"
    continue
  fi
  printf '==> %s: deploying %s to %s (%s)\n' "$svc" "$SHORT" "$url" "$reason"
  started=$SECONDS
  if "${push[@]}"; then
    add_summary "$svc" "deployed" "$SHORT in $((SECONDS - started))s"
  else
    status=$?
    printf '==> %s: push failed (exit %s); stopping here\n' "$svc" "$status" >&2
    add_summary "$svc" "FAILED" "git push exited $status (see the build log above; a rejected push leaves the old release serving)"
    FAILED=1
    STOPPED=1
  fi
done

printf '\n%-10s %-18s %-14s %s\n' "service" "app" "result" "detail"
printf '%s' "$SUMMARY"
exit "$FAILED"
