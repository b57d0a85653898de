#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds in release mode and
# runs `dmd2 demo` (pass other dmd2 arguments to run something else, e.g. `scripts/main.sh gradcheck`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DMD2_NUM_THREADS="${DMD2_NUM_THREADS:-2}"
# BLIS runs on OpenMP; spinning OpenMP workers steal the cores our own parallel loops need
# between GEMMs (measured: a tiny training loop 11 s spinning vs 1.5 s passive). libgomp reads
# this when it loads, so it must be set before the process starts.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
swift build -c release --product dmd2
if [ $# -eq 0 ]; then set -- demo; fi
exec "$(swift build -c release --show-bin-path)/dmd2" "$@"
