#!/usr/bin/env bash
# Make sure a Docker engine answers, for `make image-test` (and so `make test`), as browser-deps does for Chromium:
#   - Debian's docker.io and debootstrap are installed when missing (root only);
#   - dockerd is started in the background when none answers (root only), and left running for later calls.
#
# Exit status: 0 when `docker info` answers, or when Docker cannot run here at all (not root and no engine: the
# image test then skips with one line saying so); non-zero, loudly, when root could install or start it and
# that failed, so CI (root, apt) never skips the image test silently. IMAGE_TEST=skip skips deliberately.
#
# dockerd is tried first with Docker's defaults (bridge network + iptables NAT, which work on this project's
# build machines); if it does not come up, once more with --iptables=false --bridge=none, for sandboxes that
# forbid netfilter. Builds and test containers then use --network host (docker/build-image.sh, tests/test_image.py).
set -euo pipefail

LOG="${DOCKERD_LOG:-/var/log/anime-dockerd.log}"

[ "${IMAGE_TEST:-}" != skip ] || exit 0
engine_answers() { docker info >/dev/null 2>&1; }
if command -v docker >/dev/null && engine_answers; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    exit 0   # no engine and no way to start one: tests/test_image.py skips with one line
fi

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || ! command -v docker >/dev/null; then
    echo "docker/engine.sh: installing Debian's docker.io and debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        docker.io debootstrap ca-certificates >/dev/null
fi

start_dockerd() {
    # setsid + nohup: the engine outlives make, like a system service; its pid is in /var/run/docker.pid.
    echo "docker/engine.sh: starting dockerd${*:+ $*} (log: $LOG)"
    setsid nohup dockerd "$@" >>"$LOG" 2>&1 </dev/null &
    local pid=$!
    for _ in $(seq 1 60); do
        engine_answers && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.5
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 1
}

if start_dockerd; then
    exit 0
fi
echo "docker/engine.sh: dockerd did not come up with its defaults; retrying without iptables and the bridge" >&2
tail -5 "$LOG" >&2 || true
# A dockerd that failed leaves its pid file behind; the next one refuses to start over it.
rm -f /var/run/docker.pid
if start_dockerd --iptables=false --bridge=none; then
    exit 0
fi
echo "docker/engine.sh: dockerd could not be started; its log ends with:" >&2
tail -20 "$LOG" >&2 || true
echo "docker/engine.sh: fix the engine, or run with IMAGE_TEST=skip to skip the image test deliberately" >&2
exit 1
