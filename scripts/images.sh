#!/usr/bin/env bash
# Builds the service images as Dokku does (each <svc>_service/Dockerfile, repository root as the
# context, from the tracked files: `git archive HEAD`, what `git push dokku` sends) with rootful
# podman (no Docker daemon, no registry), then runs each one as Dokku would: the Procfile's
# release command (migrations) against per-run databases, the web process until it answers
# app.json's startup check, as a non-root user; the content image must carry the compiled
# kernel; no image may carry a compiler. Prints each image's size. Also parses
# docker-compose.dev.yml with podman-compose (dry run).
#
#   scripts/images.sh                 # every service
#   scripts/images.sh auth content    # a subset
#
# Installs its own OS packages when missing (apt-get). Needs the local
# infrastructure (scripts/infra.sh) and the dev virtualenv (scripts/bootstrap.sh); scripts/test.sh
# runs it after both unless SKIP_IMAGES=1. Rootful podman: as root, or it re-runs itself with sudo.
#
# No registry is reachable, so python:3.11-slim-bookworm is a local stand-in built with
# mmdebstrap (Debian bookworm's Python 3.11 in a venv at /usr/local, where the official image
# has python and pip) and cached in $IMAGES_CACHE; the Dockerfiles stay FROM the official name.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${IMAGES_CACHE:-/var/cache/scenextras/images}"
PYTHON="${IMAGES_PYTHON:-$ROOT/.venv/bin/python}"
BASE=docker.io/library/python:3.11-slim-bookworm
TAG_PREFIX=localhost/scenextras
LABEL=org.scenextras.images-check
say() { printf '[images] %s\n' "$*"; }

# Rootful podman. Through sudo, the variables saying where the infrastructure and the cache are.
if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=IMAGES_CACHE,IMAGES_PYTHON,TEST_PG_BASE,TEST_REDIS_URL,TEST_AMQP_HOST \
    --preserve-env=TEST_AMQP_PORT,TEST_RABBIT_API,TEST_RABBIT_USER,TEST_RABBIT_PASSWORD bash "$0" "$@"
fi

# The services: those given, else the fleet manifest's.
if [ "$#" -gt 0 ]; then
  services=("$@")
else
  mapfile -t services < <(cd "$ROOT" && python3 -m shared.fleet names)
fi
for svc in "${services[@]}"; do
  [ -f "$ROOT/${svc}_service/Dockerfile" ] || { echo "no ${svc}_service/Dockerfile: unknown service $svc" >&2; exit 2; }
done

# OS packages (apt-get). runc, not crun: crun fails on hosts with hybrid (v1) cgroups.
wanted=()
for pkg in podman buildah mmdebstrap runc uidmap slirp4netns fuse-overlayfs containernetworking-plugins \
           catatonit podman-compose; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || wanted+=("$pkg")
done
if [ ${#wanted[@]} -gt 0 ]; then
  say "installing ${wanted[*]} (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${wanted[@]}" >/dev/null
fi

mkdir -p "$CACHE"
# One images check at a time on this machine (they are CPU- and disk-heavy); others wait.
exec 9>"$CACHE/lock"
if ! flock -n 9; then
  say "another images check is running; waiting for it"
  flock -w 3600 9
fi

# podman's defaults ask for more open files and processes than some hosts allow.
export CONTAINERS_CONF="$CACHE/containers.conf"
cat > "$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF

started=$SECONDS
workdir=$(mktemp -d /var/tmp/scenextras-images.XXXXXX)
cleanup() {
  local ids
  ids=$(podman ps -aq --filter "label=$LABEL" 2>/dev/null || true)
  # shellcheck disable=SC2086
  [ -z "$ids" ] || podman rm -f $ids >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap cleanup EXIT

# The stand-in base image. Its recipe's hash names the cached root filesystem, so changing the
# recipe rebuilds it; otherwise it is imported from the cache when podman's store lacks it.
# slim as the official image: no docs, man pages or locales; merged /usr without the usrmerge
# package (which would pull in perl).
debian_sources=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)
# shellcheck disable=SC2054,SC2016  # commas and $1 belong to mmdebstrap
mmdebstrap_args=(
  --variant=minbase --include=python3,python3-venv,python3-dev,ca-certificates
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --customize-hook='chroot "$1" python3 -m venv /usr/local'
  bookworm
)
recipe=$(printf '%s\n' "${mmdebstrap_args[@]}" "${debian_sources[@]}" | sha256sum | cut -c1-16)
rootfs="$CACHE/python-3.11-slim-bookworm-standin-$recipe.tar"
imported=$(podman image inspect --format '{{index .Labels "org.scenextras.recipe"}}' "$BASE" 2>/dev/null || true)
if [ "$imported" != "$recipe" ]; then
  t0=$SECONDS
  if [ ! -f "$rootfs" ]; then
    say "building the stand-in base image (mmdebstrap bookworm; about a minute)"
    rm -f "$CACHE"/python-3.11-slim-bookworm-standin-*.tar
    if ! mmdebstrap --format=tar "${mmdebstrap_args[@]}" "$rootfs.part" "${debian_sources[@]}" \
           </dev/null >"$workdir/mmdebstrap.log" 2>&1; then
      tail -n 40 "$workdir/mmdebstrap.log" >&2
      echo "[images] FAILED: mmdebstrap (the stand-in base image)" >&2
      exit 1
    fi
    mv "$rootfs.part" "$rootfs"
  fi
  podman import --quiet \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    --change "LABEL org.scenextras.recipe=$recipe" \
    "$rootfs" "$BASE" >/dev/null
  say "stand-in $BASE imported from $rootfs ($((SECONDS - t0))s)"
fi

# The build context: the tracked files at HEAD.
cd "$ROOT"
head=$(git rev-parse --short HEAD)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  say "NOTE: building HEAD ($head); these uncommitted changes are NOT in the images:"
  git status --short --untracked-files=no | sed 's/^/[images]   /'
fi
mkdir "$workdir/context"
git archive HEAD | tar -x -C "$workdir/context"

# pip inside the build reaches the index as the host does: its configuration and CA bundle.
build_mounts=()
for path in /etc/pip.conf /etc/xdg/pip /etc/ssl/certs; do
  [ -e "$path" ] && build_mounts+=(-v "$path:$path:ro")
done

for svc in "${services[@]}"; do
  t0=$SECONDS
  say "building $svc (${svc}_service/Dockerfile at $head)"
  dockerfile="$workdir/context/${svc}_service/Dockerfile"
  # Named build stages (content's kernel) get a tag of their own, so the prune below keeps their
  # layers cached; then the image itself.
  mapfile -t targets < <(sed -nE 's/^FROM[[:space:]].*[[:space:]]AS[[:space:]]+([^[:space:]]+).*/\1/ip' "$dockerfile")
  for target in "${targets[@]}" ""; do
    tag="$TAG_PREFIX/$svc-service${target:+-$target}:check"
    if ! podman build --quiet --pull=never --network=host "${build_mounts[@]}" ${target:+--target "$target"} \
           -f "$dockerfile" -t "$tag" "$workdir/context" > "$workdir/build-$svc.log" 2>&1; then
      tail -n 40 "$workdir/build-$svc.log" >&2
      echo "[images] FAILED: the $svc image does not build${target:+ (stage $target)}" >&2
      exit 1
    fi
  done
  say "built $svc in $((SECONDS - t0))s"
done

# Run each image: release, web + startup check, non-root, no compiler, sizes (Python: per-run
# databases and vhost like the tests, dropped afterwards).
"$PYTHON" "$ROOT/scripts/images_check.py" --context "$workdir/context" --image-prefix "$TAG_PREFIX" \
  --base "$BASE" --label "$LABEL" "${services[@]}"

# docker-compose.dev.yml as podman-compose reads it (merge keys, ${VAR:-default}, depends_on), in
# dry-run mode with a no-op in place of podman: what it would build and run, each service from its
# Dockerfile with PORT and the database set. Not brought up: its infrastructure images (postgres,
# redis, rabbitmq) come from a registry, unreachable here (docs/deployment.md).
noop=$(readlink -f /bin/true)
if ! compose=$(cd "$workdir/context" \
      && podman-compose --podman-path "$noop" -p scenextras -f docker-compose.dev.yml --dry-run up -d 2>&1); then
  printf '%s\n' "$compose" | tail -n 20 >&2
  echo "[images] FAILED: podman-compose cannot read docker-compose.dev.yml" >&2
  exit 1
fi
for svc in "${services[@]}"; do
  run=$(grep -E "^$noop run --name=scenextras_$svc-service_1 " <<< "$compose" || true)
  if ! grep -qxF "$noop build -t scenextras_$svc-service -f ./${svc}_service/Dockerfile ." <<< "$compose" \
     || [[ "$run" != *" -e PORT=5000 "* || "$run" != *" -e DATABASE_URL=postgresql://"* ]]; then
    echo "[images] FAILED: docker-compose.dev.yml does not build and run $svc-service as Dokku does" >&2
    exit 1
  fi
done
say "docker-compose.dev.yml: podman-compose would build and run ${services[*]} (dry run; infrastructure not started)"

# Dangling layers of earlier builds of these tags; the layer cache of the current ones stays.
podman image prune -f >/dev/null 2>&1 || true
say "all checks passed for: ${services[*]} ($((SECONDS - started))s)"
