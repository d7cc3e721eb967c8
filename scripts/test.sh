#!/usr/bin/env bash
# README's test command: the Swift tests, then the Python package's tests (python/tests) against the release build
# of the C library. Needs NumPy; the PyTorch tests run where torch imports, the CUDA ones where a GPU is.
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

swift test
swift build -c release --product flexattention
export FLEXATTENTION_LIBRARY="${FLEXATTENTION_LIBRARY:-$PWD/.build/release/libflexattention.so}"
export FLEXATTENTION_REQUIRE_LIBRARY=1  # a library that does not load fails the run rather than skipping its tests
python3 -m unittest discover -s python/tests
