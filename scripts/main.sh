#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds in release mode and
# runs `dmd2 demo` (pass other dmd2 arguments to run something else, e.g. `scripts/main.sh gradcheck`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DMD2_NUM_THREADS="${DMD2_NUM_THREADS:-2}"
swift build -c release --product dmd2
if [ $# -eq 0 ]; then set -- demo; fi
exec "$(swift build -c release --show-bin-path)/dmd2" "$@"
