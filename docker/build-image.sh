#!/usr/bin/env bash
# Build the serving image from a clean export of a commit: the one command both `make image-test` and the
# Jenkinsfile use, so what the tests run is what GKE runs.
#
#   docker/build-image.sh --tag NAME [--rev REV] [--model DIR] [--base IMAGE] [--pull] [-- DOCKER-BUILD-ARGS...]
#
#   --tag NAME     image name (required)
#   --rev REV      the commit to build (default HEAD). The build context is `git archive REV`, never the
#                  working tree, so uncommitted or untracked files cannot leak into the image.
#   --model DIR    finished model artifacts to bake in (artifacts/model after `dvc repro`; a symlink to a
#                  versioned folder is followed). Without it the Dockerfile trains on the embedded sample.
#   --base IMAGE   the Python base (the Dockerfile's PYTHON_IMAGE; default: the Dockerfile's own,
#                  python:3.11-slim). Where the registry cannot be reached: docker/standin-base.sh's image.
#   --pull         always pull a newer base (CI); never use it with a local stand-in base.
#   after --        passed to `docker build` as they are, e.g. --build-arg TRAIN_EPOCHS=3
#
# Networking: builds use the engine's default bridge; an engine started without one (dockerd --bridge=none,
# as docker/engine.sh does where iptables cannot be used) builds with --network host instead.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tag="" rev="HEAD" model="" base="" pull=()
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) tag="$2"; shift 2 ;;
        --rev) rev="$2"; shift 2 ;;
        --model) model="$2"; shift 2 ;;
        --base) base="$2"; shift 2 ;;
        --pull) pull=(--pull); shift ;;
        --) shift; break ;;
        *) echo "build-image.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[ -n "$tag" ] || { echo "build-image.sh: --tag is required" >&2; exit 2; }

commit="$(git -C "$repo" rev-parse --verify "$rev^{commit}")"
context="$(mktemp -d "${TMPDIR:-/tmp}/anime-image-context.XXXXXX")"
trap 'rm -rf "$context"' EXIT
git -C "$repo" archive --format=tar "$commit" | tar -x -C "$context"
if [ -n "$model" ]; then
    [ -f "$model/manifest.json" ] || { echo "build-image.sh: $model has no manifest.json" >&2; exit 1; }
    mkdir -p "$context/artifacts"
    cp -rL "$model" "$context/artifacts/model"
fi

args=(--tag "$tag" --label "org.opencontainers.image.revision=$commit" "${pull[@]}")
[ -z "$base" ] || args+=(--build-arg "PYTHON_IMAGE=$base")
if ! docker network inspect bridge >/dev/null 2>&1; then
    args+=(--network host)
fi

started=$(date +%s)
echo "build-image.sh: building $tag from $commit${model:+ with the model in $model}${base:+ on $base}"
docker build "${args[@]}" "$@" "$context"
size=$(docker image inspect --format '{{ .Size }}' "$tag")
echo "build-image.sh: built $tag in $(( $(date +%s) - started )) s, $(( size / 1000000 )) MB"
