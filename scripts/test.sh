#!/usr/bin/env bash
# The test command: installs the system libraries if missing, checks the package graph
# (scripts/check-package-graph.py), then runs the default test suite
# in release mode (SIMD kernels in debug builds are ~100x slower) with 2 threads pinned, so
# results are reproducible. Heavy suites (full-size model, long training) run only with
# DMD2_HEAVY_TESTS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DMD2_NUM_THREADS="${DMD2_NUM_THREADS:-2}"
# The package graph must match the imports (declared = imported), before anything builds.
python3 scripts/check-package-graph.py
exec swift test -c release "$@"
