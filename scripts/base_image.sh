#!/usr/bin/env bash
# Build a Debian bookworm base image with Python 3.11 (+ venv) from Debian's archive with
# debootstrap, and load it into Docker as a local image. For machines that reach Debian's archive
# but no container registry; scripts/build_image.sh calls it when the public base is unreachable.
#
#   bash scripts/base_image.sh [--force]
#
# Environment: BASE_TAG (default sm-text-pipeline-base:bookworm), DEBIAN_MIRROR
# (http://deb.debian.org/debian), DEBIAN_SECURITY_MIRROR (http://deb.debian.org/debian-security),
# http_proxy (else apt's Acquire::http::Proxy is used, when set). Needs root and debootstrap.
# Cached: an existing BASE_TAG younger than BASE_MAX_AGE_DAYS (30) is kept unless --force (or
# FORCE_BASE=1) is given; when rebuilding an old one fails, the old one is kept.
set -euo pipefail

BASE_TAG=${BASE_TAG:-sm-text-pipeline-base:bookworm}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
FORCE=${FORCE_BASE:-0}
MAX_AGE_DAYS=${BASE_MAX_AGE_DAYS:-30}
KEEP_OLD_ON_FAILURE=0

log() { printf '[base_image] %s\n' "$*" >&2; }
die() {
  if ((KEEP_OLD_ON_FAILURE)); then
    log "warning: $* (keeping the old $BASE_TAG)"
    exit 0
  fi
  log "error: $*"
  exit 1
}

for arg in "$@"; do
  case $arg in
    --force) FORCE=1 ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (try --help)" ;;
  esac
done

command -v docker >/dev/null 2>&1 || die "docker is not installed (Debian: apt-get install docker.io)"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer: run 'bash scripts/start_dockerd.sh'"

# Cached, but not for ever: an older base misses Debian's security updates.
if [[ $FORCE != 1 ]] && created=$(docker image inspect -f '{{.Created}}' "$BASE_TAG" 2>/dev/null); then
  age_days=$((($(date +%s) - $(date -d "$created" +%s)) / 86400))
  if ((age_days < MAX_AGE_DAYS)); then
    log "using cached $BASE_TAG ($age_days days old; rebuild with --force)"
    exit 0
  fi
  log "$BASE_TAG is $age_days days old (BASE_MAX_AGE_DAYS=$MAX_AGE_DAYS): rebuilding"
  KEEP_OLD_ON_FAILURE=1
fi

[[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
command -v debootstrap >/dev/null 2>&1 \
  || die "debootstrap is not installed (Debian: apt-get install debootstrap)"

# debootstrap and apt in the chroot honour http_proxy; take apt's own proxy setting if the
# environment has none.
if [[ -z ${http_proxy:-} ]] && command -v apt-config >/dev/null 2>&1; then
  APT_PROXY=""
  eval "$(apt-config shell APT_PROXY Acquire::http::Proxy)"
  if [[ -n $APT_PROXY && $APT_PROXY != DIRECT ]]; then
    export http_proxy=$APT_PROXY
    log "using apt's proxy $http_proxy"
  fi
fi

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/sm-base.XXXXXX")
ROOTFS=$WORK/rootfs
cleanup() {
  # Nothing is mounted inside the rootfs (no /proc is needed for these steps).
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

start=$(date +%s)
log "debootstrap $SUITE from $MIRROR into $ROOTFS (a few minutes)"
debootstrap --variant=minbase --components=main \
  --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
  tail -n 30 "$WORK/debootstrap.log" >&2
  die "debootstrap failed"
}

# The same apt sources as Debian's own images: updates and security fixes on top of the release.
rm -f "$ROOTFS/etc/apt/sources.list"
cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# Like Debian's official images: keep docs, man pages and translations out of later installs.
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker-excludes" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF

log "applying $SUITE-updates and $SUITE-security"
chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  ${http_proxy:+http_proxy=$http_proxy} \
  sh -c 'apt-get update -qq && apt-get -y -qq upgrade && apt-get clean' >"$WORK/upgrade.log" 2>&1 || {
  tail -n 30 "$WORK/upgrade.log" >&2
  die "apt-get upgrade in the new rootfs failed"
}

# What the packages shipped before the excludes applied, caches, logs and host files.
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$ROOTFS"/usr/share/{man,info,locale,lintian}/* \
  "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/cache/debconf/*-old \
  "$ROOTFS"/var/log/* "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* "$ROOTFS"/root/.cache
: >"$ROOTFS/etc/resolv.conf"
: >"$ROOTFS/etc/hostname"
rm -f "$ROOTFS/etc/machine-id" "$ROOTFS/var/lib/dbus/machine-id"

py_version=$(chroot "$ROOTFS" /usr/bin/python3 -c 'import platform; print(platform.python_version())')
chroot "$ROOTFS" /usr/bin/python3 -c 'import ensurepip, venv' \
  || die "python3 in the rootfs lacks ensurepip/venv"
log "python3 $py_version; packing into $BASE_TAG"

tar --numeric-owner --xattrs -C "$ROOTFS" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' \
  --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase + python3 $py_version (debootstrap from $MIRROR)\"" \
  --change "LABEL org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --message "debootstrap $SUITE minbase + python3 python3-venv ca-certificates" \
  - "$BASE_TAG" >/dev/null

log "built $BASE_TAG in $(($(date +%s) - start)) s ($(docker image inspect -f '{{.Size}}' "$BASE_TAG") bytes)"
