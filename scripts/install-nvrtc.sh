#!/usr/bin/env bash
# Installs NVIDIA's NVRTC from PyPI into a folder this script owns, so CI can compile every generated kernel on a
# machine with no GPU and no CUDA toolkit. Idempotent: a second run finds the marker and installs nothing.
# Prints the library folder (the one holding libnvrtc.so.13) on stdout; everything else goes to stderr.
#
#   export FLEXATTENTION_NVRTC="$(scripts/install-nvrtc.sh)"
#
# FLEXATTENTION_NVRTC_PREFIX overrides the install folder (default: $XDG_CACHE_HOME/flexattention/nvrtc-VERSION,
# which the library also searches on its own). The pinned version matches the GPU machine's CUDA 13.0.
set -euo pipefail

version=13.0.88
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/flexattention"
prefix="${FLEXATTENTION_NVRTC_PREFIX:-$cache_root/nvrtc-$version}"
lib="$prefix/nvidia/cu13/lib"
marker="$prefix/.installed-$version"

if [[ ! -f "$marker" || ! -e "$lib/libnvrtc.so.13" ]]; then
    python=$(command -v python3 || command -v python) || { echo "install-nvrtc: python3 not found" >&2; exit 1; }
    staging="$prefix.tmp.$$"
    rm -rf "$staging"
    echo "install-nvrtc: installing nvidia-cuda-nvrtc==$version into $prefix" >&2
    "$python" -m pip install --quiet --no-deps --disable-pip-version-check --target "$staging" \
        "nvidia-cuda-nvrtc==$version" >&2
    touch "$staging/.installed-$version"
    # Swap the finished folder in whole, so an interrupted install never looks complete.
    rm -rf "$prefix"
    mkdir -p "$(dirname "$prefix")"
    mv "$staging" "$prefix"
fi

[[ -e "$lib/libnvrtc.so.13" ]] || { echo "install-nvrtc: $lib/libnvrtc.so.13 missing after install" >&2; exit 1; }
echo "$lib"
