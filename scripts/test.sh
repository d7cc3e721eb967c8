#!/usr/bin/env bash
# README's test command: the Swift tests, then the Python package's tests against the release build of the C
# library (libflexattention.so). Needs NumPy; the PyTorch tests run where torch imports.
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

swift test
swift build -c release --product flexattention
export FLEXATTENTION_LIBRARY="${FLEXATTENTION_LIBRARY:-$PWD/.build/release/libflexattention.so}"
python3 -m unittest discover -s python/tests -t python
