#!/usr/bin/env bash
# Builds the static flexattn binary for the GPU machine (which has no Swift) into .gpu/, a git-ignored folder to
# pass in the device tool's `carry`. Only glibc is needed there; CUDA and NVRTC are found at run time.
#
#   scripts/build-gpu-bundle.sh [BUNDLE_DIR]      (default: .gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
bundle="${1:-.gpu}"
scratch="${FLEXATTENTION_SCRATCH:-.build-gpu}"

swift build -c release --static-swift-stdlib --product flexattn --scratch-path "$scratch" >&2
mkdir -p "$bundle"
cp "$scratch/release/flexattn" "$bundle/flexattn"
echo "$bundle/flexattn ($(du -h "$bundle/flexattn" | cut -f1))"
