#!/usr/bin/env bash
# Builds the base images of Sluice's Dockerfiles locally, for machines that reach Debian's
# package mirror and PyPI but no container registry (where `FROM debian:bookworm-slim`
# would fail to pull). With Docker Hub at hand, none of this is needed.
#
#   sudo docker/local-base-images.sh [--force] [debian:bookworm-slim] [python:3.11-slim]
#
# debian:bookworm-slim  debootstrap --variant=minbase from the mirror this machine's apt
#                       uses, stripped of docs, man pages and locales as the official slim
#                       image is, then `docker import`.
# python:3.11-slim      debian:bookworm-slim + Debian's python3 (3.11), pip and venv, with
#                       `python` and `pip` on PATH and system-wide pip installs allowed.
#
# Each image gets the public name, so the Dockerfiles build unchanged, and the label
# org.sluice.local-base=<name>, so it is never taken for the real one. An image that exists
# is kept unless --force is given. CA certificates this machine trusts
# (/usr/local/share/ca-certificates, or $SITE_CA_DIR; "none" to skip) are copied in, so
# HTTPS inside builds works behind a proxy that re-signs TLS. $DEBIAN_MIRROR and
# $DEBIAN_SECURITY_MIRROR override the mirrors. Needs root, a running dockerd, debootstrap
# and debian-archive-keyring; every build uses the host network.
set -euo pipefail

SUITE=bookworm
LABEL=org.sluice.local-base
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

say() { echo "local-base-images: $*" >&2; }
fail() { say "$*"; exit 1; }

force=0
images=()
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) fail "unknown option $arg" ;;
    *) images+=("$arg") ;;
  esac
done
[ ${#images[@]} -gt 0 ] || images=(debian:$SUITE-slim python:3.11-slim)

[ "$(id -u)" -eq 0 ] || fail "must run as root (debootstrap and the docker socket need it)"
docker info >/dev/null 2>&1 || fail "no Docker daemon answers on the docker socket"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# The URI apt uses for a suite, from apt's own view of its sources (both file formats).
apt_uri() {
  # shellcheck disable=SC2016 # $(...) is apt's field syntax
  apt-get indextargets --no-release-info --format '$(TARGET_OF) $(IDENTIFIER) $(RELEASE) $(REPO_URI)' \
    2>/dev/null | awk -v suite="$1" '$1 == "deb" && $2 == "Packages" && $3 == suite { print $4; exit }' |
    sed 's:/*$::'
}

build_debian() {
  local tag=$1 mirror security root
  command -v debootstrap >/dev/null || fail "debootstrap is missing (apt-get install debootstrap)"
  [ -r "$KEYRING" ] || fail "the Debian archive keyring is missing (apt-get install debian-archive-keyring)"
  mirror=${DEBIAN_MIRROR:-$(apt_uri $SUITE)}
  security=${DEBIAN_SECURITY_MIRROR-$(apt_uri $SUITE-security)}
  case "$mirror" in
    http://* | https://* | file:/*) ;;
    *) fail "no http(s) mirror for '$SUITE' in apt's sources; set DEBIAN_MIRROR" ;;
  esac
  root=$(mktemp -d "${TMPDIR:-/var/tmp}/sluice-base.XXXXXX")
  # shellcheck disable=SC2064 # remove this very folder on any exit
  trap "rm -rf '$root'" EXIT
  say "$tag: debootstrap from $mirror"
  nice -n 10 debootstrap --variant=minbase --keyring="$KEYRING" "$SUITE" "$root/fs" "$mirror" \
    >"$root/debootstrap.log" 2>&1 || { tail -n 20 "$root/debootstrap.log" >&2; fail "debootstrap failed"; }
  local fs=$root/fs
  # Sources in deb822 form, as the official image has them, on the same mirrors.
  rm -f "$fs/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: %s\n' \
      "$mirror" $SUITE $SUITE "$KEYRING"
    [ -z "$security" ] ||
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: %s\n' \
        "$security" $SUITE "$KEYRING"
  } >"$fs/etc/apt/sources.list.d/debian.sources"
  # Container settings of the official image: no apt caches, no translations, no docs, no
  # services started by package scripts.
  cat >"$fs/etc/apt/apt.conf.d/docker-clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
  echo 'Acquire::Languages "none";' >"$fs/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Acquire::GzipIndexes "true";' >"$fs/etc/apt/apt.conf.d/docker-gzip-indexes"
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
    'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
    >"$fs/etc/dpkg/dpkg.cfg.d/docker"
  printf '#!/bin/sh\nexit 101\n' >"$fs/usr/sbin/policy-rc.d"
  chmod 0755 "$fs/usr/sbin/policy-rc.d"
  find "$fs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$fs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$fs"/usr/share/man/* "$fs"/usr/share/info/* "$fs"/var/lib/apt/lists/* \
    "$fs"/var/cache/apt/*.bin "$fs"/var/cache/apt/archives/*.deb "$fs/var/log/bootstrap.log"
  find "$fs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  : >"$fs/etc/resolv.conf"
  : >"$fs/etc/hostname"
  : >"$fs/etc/machine-id"
  # Picked up by update-ca-certificates when an image installs ca-certificates.
  local cas=${SITE_CA_DIR:-/usr/local/share/ca-certificates}
  if [ "$cas" != none ] && [ -d "$cas" ]; then
    find "$cas" -maxdepth 1 -type f -name '*.crt' -exec install -D -m 0644 -t "$fs/usr/local/share/ca-certificates" {} +
  fi
  say "$tag: docker import"
  tar --numeric-owner -C "$fs" -cf - . |
    docker import --change 'CMD ["bash"]' --change "LABEL $LABEL=$tag" - "$tag" >/dev/null
  rm -rf "$root"
  trap - EXIT
}

build_python() {
  local tag=$1
  have_image debian:$SUITE-slim || build_debian debian:$SUITE-slim
  say "$tag: docker build FROM debian:$SUITE-slim"
  docker build --network host --label "$LABEL=$tag" -t "$tag" - >&2 <<DOCKERFILE
FROM debian:$SUITE-slim
ENV LANG=C.UTF-8
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates netbase tzdata python3 python3-pip python3-venv \\
 && rm -rf /var/lib/apt/lists/* /usr/lib/python3.*/EXTERNALLY-MANAGED \\
 && ln -s /usr/bin/python3 /usr/local/bin/python \\
 && ln -s /usr/bin/pip3 /usr/local/bin/pip
CMD ["python3"]
DOCKERFILE
}

for image in "${images[@]}"; do
  if [ "$force" -eq 0 ] && have_image "$image"; then
    say "$image: present"
    continue
  fi
  case "$image" in
    debian:$SUITE-slim) build_debian "$image" ;;
    python:3.11-slim) build_python "$image" ;;
    *) fail "cannot build $image (known: debian:$SUITE-slim, python:3.11-slim)" ;;
  esac
done
