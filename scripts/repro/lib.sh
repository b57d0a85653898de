# Shared by the reproduction scripts (scripts/repro/*.sh): installs what is missing, builds the
# release binary once, prepares the default data, and runs jobs a few at a time.
# Settings (environment): LANES (jobs at once, default 2: one per core of the reference machine),
# DATA (default data/fashion-mnist-64), TEACHER (default: the shipped cpu64Tiny teacher).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
scripts/setup.sh
# One thread per job: two single-threaded jobs use two cores better than one two-threaded job
# (no split or hand-out overhead, and each job keeps its own core's caches).
export DMD2_NUM_THREADS=1
swift build -c release --product dmd2 >&2
DMD2="$(swift build -c release --show-bin-path)/dmd2"
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
