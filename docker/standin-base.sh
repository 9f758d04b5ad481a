#!/usr/bin/env bash
# A stand-in for the official python:3.11-slim base image, built from Debian packages with debootstrap.
#
#   docker/standin-base.sh [TAG]        (root; needs debootstrap and a running Docker engine)
#
# What it is for: building the serving image where the public container registry cannot be reached
# (air-gapped or registry-less build machines, sandboxed CI). Only the Debian mirror is needed. It is NOT
# what production runs: Jenkins builds on the real python:3.11-slim (docker/build-image.sh --pull).
#
# What it holds: Debian bookworm (minbase) with its Python 3.11, and a virtualenv at /usr/local, so that
# /usr/local/bin/python and /usr/local/bin/pip are where the official image has them and the Dockerfile
# builds on it unchanged (docker/build-image.sh --base TAG). The machine's CA bundle is copied in, so pip
# inside the build works behind a TLS-inspecting proxy as it does on the machine.
#
# The image is labelled with a hash of this script: when an image with the same hash exists, nothing is
# rebuilt (a second call in the same CI run costs nothing).
set -euo pipefail

TAG="${1:-anime-recommender-base:standin-py3.11-bookworm}"
SUITE="${STANDIN_SUITE:-bookworm}"
MIRROR="${STANDIN_MIRROR:-http://deb.debian.org/debian}"
HOST_CA="${STANDIN_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
# The Debian packages the official slim image has too (Python, CA certificates, netbase, tzdata). Not python3-pip:
# the venv brings its own pip (python3-venv's bundled wheel). Not curl: nothing in the build or the HEALTHCHECK
# uses it, and the official slim image has none either.
PACKAGES="python3,python3-venv,ca-certificates,netbase,tzdata"

script_hash="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"

if [ "$(docker image inspect --format '{{ index .Config.Labels "standin.script-hash" }}' "$TAG" 2>/dev/null)" \
     = "$script_hash" ]; then
    echo "stand-in base $TAG is up to date (script hash $script_hash)"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }

started=$(date +%s)
root="$(mktemp -d "${TMPDIR:-/tmp}/standin-rootfs.XXXXXX")"
trap 'rm -rf "$root"' EXIT

echo "stand-in base: debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { tail -40 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
echo "stand-in base: debootstrap done in $(( $(date +%s) - started )) s"

# The machine's CA bundle (a TLS-inspecting proxy's root included), where Debian's tools and pip look for it.
if [ -s "$HOST_CA" ]; then
    cp "$HOST_CA" "$root/etc/ssl/certs/ca-certificates.crt"
fi
# /usr/local becomes a virtualenv: python, pip and site-packages where python:3.11-slim has them.
chroot "$root" /usr/bin/python3 -m venv /usr/local
chroot "$root" /usr/local/bin/python -m pip --version >/dev/null

# Trim what a container never uses (as the official slim images do): apt's caches and lists, docs, man
# pages, locales, bytecode caches of the Debian Python.
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
find "$root/usr/lib/python3" "$root/usr/lib/python3.11" -name __pycache__ -type d -prune -exec rm -rf {} +
# debootstrap leaves the build machine's resolver and hostname behind; Docker provides its own at run time.
: >"$root/etc/resolv.conf"
rm -f "$root/etc/hostname"

tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change "LABEL standin.script-hash=$script_hash" \
    --change "LABEL standin.suite=$SUITE" \
    --change 'CMD ["python3"]' \
    - "$TAG" >/dev/null

size=$(docker image inspect --format '{{ .Size }}' "$TAG")
echo "stand-in base $TAG built in $(( $(date +%s) - started )) s, $(( size / 1000000 )) MB"

