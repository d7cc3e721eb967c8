#!/usr/bin/env bash
# Builds the static flexattn binary and libflexattention.so (the C interface, flexattention.h) for the GPU machine
# (which has no Swift) into .gpu/, a git-ignored folder to pass in the device tool's `carry`. Both link the Swift
# runtime statically, so only glibc is needed there; CUDA and NVRTC are found at run time.
#
#   scripts/build-gpu-bundle.sh [BUNDLE_DIR]      (default: .gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
bundle="${1:-.gpu}"
scratch="${FLEXATTENTION_SCRATCH:-.build-gpu}"

swift build -c release --static-swift-stdlib --product flexattn --scratch-path "$scratch" >&2
# --static-swift-stdlib links only executables statically; a shared library needs the driver flag itself. The version
# script exports the C interface alone (its own scratch folder: other flags would rebuild the executable's modules).
swift build -c release --product flexattention --scratch-path "$scratch-lib" -Xswiftc -static-stdlib \
    -Xlinker --version-script="$PWD/scripts/libflexattention.map" >&2
mkdir -p "$bundle"
cp "$scratch/release/flexattn" "$bundle/flexattn"
cp "$scratch-lib/release/libflexattention.so" "$bundle/libflexattention.so"
if ldd "$bundle/libflexattention.so" | grep -q libswift; then
    echo "$bundle/libflexattention.so still needs the Swift runtime:" >&2
    ldd "$bundle/libflexattention.so" >&2
    exit 1
fi
for file in flexattn libflexattention.so; do echo "$bundle/$file ($(du -h "$bundle/$file" | cut -f1))"; done
