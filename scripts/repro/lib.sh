# Shared by the reproduction scripts (scripts/repro/*.sh): installs what is missing, builds the
# release binary (unless DMD2 names one), prepares the default data, and runs jobs a few at a time.
# The scripts run from the repository root, whatever the caller's directory: relative paths in
# OUT, DOC, FIGURE(S), DATA and TEACHER are read from there.
# Settings (environment): LANES (jobs at once, default 2: one per core of the reference machine),
# DATA (default data/fashion-mnist-64), TEACHER (default: the shipped cpu64Tiny teacher),
# DMD2 (an already built dmd2 binary, e.g. DMD2=.build/release/dmd2: no `swift build`, which can
# take minutes on a shared machine even when little changed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# One thread per job: two single-threaded jobs use two cores better than one two-threaded job
# (no split or hand-out overhead, and each job keeps its own core's caches).
export DMD2_NUM_THREADS=1
if [ -n "${DMD2:-}" ]; then
    [ -x "$DMD2" ] || { echo "DMD2=$DMD2 is not an executable dmd2 binary (paths are relative to $(pwd))" >&2; exit 1; }
    DMD2="$(realpath "$DMD2")"
else
    scripts/setup.sh
    swift build -c release --product dmd2 >&2
    DMD2="$(swift build -c release --show-bin-path)/dmd2"
fi
LANES="${LANES:-2}"
DATA="${DATA:-data/fashion-mnist-64}"
TEACHER="${TEACHER:-models/teacher-cpu64Tiny-fashion64.safetensors}"
if [ ! -e "$DATA/train/dataset.json" ] || [ ! -e "$DATA/test/dataset.json" ]; then
    "$DMD2" prepare-data --out "$DATA"
fi

# Prints a command, then runs it with its output appended to LOG (the job's own log file).
run_logged() {
    local log="$1"; shift
    echo "+ $*" >>"$log"
    "$@" >>"$log" 2>&1
}

# Runs the shell function named by each argument line (read from stdin), LANES at a time; stops
# with the first failure after the running jobs finish.
run_jobs() {
    local failed=0 job
    while read -r job; do
        [ -z "$job" ] && continue
        while [ "$(jobs -rp | wc -l)" -ge "$LANES" ]; do wait -n || failed=1; done
        [ $failed = 0 ] || break
        eval "$job" &
    done
    while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
    return $failed
}

# "12m 34s" for a number of seconds.
human_time() { printf '%dm %02ds' $(($1 / 60)) $(($1 % 60)); }
