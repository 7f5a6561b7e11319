#!/usr/bin/env bash
# Makes Docker ready for the compose test and prints the compose command to use ("docker
# compose" or "docker-compose") as the last line of output.
#
# What is missing is set up, as root, from Debian's packages: docker.io, docker-compose
# (1.29) and debootstrap; a dockerd is started when none answers (its log goes to
# $SLUICE_DOCKERD_LOG, default /var/log/sluice-dockerd.log); the base images the Dockerfiles
# start from are pulled, or, where no container registry is reachable, built locally by
# docker/local-base-images.sh. Whatever cannot be done ends the script with one sentence
# on stderr saying what is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

fail() {
  echo "docker_ready.sh: $*" >&2
  exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

compose_command() {
  if docker compose version >/dev/null 2>&1; then
    echo "docker compose"
  elif command -v docker-compose >/dev/null 2>&1; then
    echo "docker-compose"
  fi
}

# 1. The client, compose and debootstrap.
missing=()
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
[ -n "$(compose_command)" ] || missing+=(docker-compose)
if ! command -v dockerd >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then
  missing+=(docker.io)
fi
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap debian-archive-keyring)
if [ ${#missing[@]} -gt 0 ]; then
  is_root || fail "Docker is not set up and installing ${missing[*]} needs root (run the tests as root, or install them)"
  command -v apt-get >/dev/null 2>&1 || fail "Docker is not set up and this machine has no apt-get to install ${missing[*]}"
  echo "docker_ready.sh: installing ${missing[*]} from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || fail "apt-get update failed: Debian's package mirror is not reachable"
  # shellcheck disable=SC2046 # one word per package
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >&2 ||
    fail "apt-get install ${missing[*]} failed"
fi

# 2. A daemon.
if ! docker info >/dev/null 2>&1; then
  is_root || fail "no Docker daemon answers and starting one needs root"
  log="${SLUICE_DOCKERD_LOG:-/var/log/sluice-dockerd.log}"
  echo "docker_ready.sh: starting dockerd (log: $log)" >&2
  nohup dockerd >"$log" 2>&1 &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || fail "dockerd did not start within 60 s (see $log)"
fi

# 3. Base images: pulled where a registry answers, else built here.
for image in debian:bookworm-slim python:3.11-slim; do
  docker image inspect "$image" >/dev/null 2>&1 && continue
  timeout 120 docker pull -q "$image" >&2 2>/dev/null && continue
  echo "docker_ready.sh: no registry gives $image; building it locally" >&2
  is_root || fail "$image cannot be pulled and building it locally needs root"
  bash "$repo/docker/local-base-images.sh" "$image" >&2 || fail "building $image locally failed"
done

compose_command
