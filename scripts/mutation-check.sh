#!/usr/bin/env bash
# Mutation check of `dmd2 gradcheck`: plant plausible backward bugs one at a time in a scratch
# copy of the repository, rebuild, run the gradient checks of the op concerned, and expect them
# to fail. Prints a table mutation → caught/missed and exits non-zero if any bug is missed (or a
# patch no longer applies, or the unmutated baseline fails).
#
#   scripts/mutation-check.sh            every mutation (~1–5 min of rebuild each)
#   scripts/mutation-check.sh 'silu|adamw'   only mutations whose id matches this (grep -E) pattern
#
# The working tree is never touched: its tracked and untracked (not ignored) files are copied to
# $DMD2_MUTATION_DIR (default .build-mutation/repo, ignored by git; kept between runs so rebuilds
# are incremental), each mutation patches one file there, and the pristine file is restored
# after the run. The bugs are in code the Double checks execute: the CPU backend's kernels
# (DMD2Core/Backend) and the ops' backward code (DMD2Ops), plus AdamW (DMD2Train).
# Each mutation is an exact text replacement that must match once; a mutation that no longer
# matches (the code moved) is reported as "stale", which fails the run: update its text.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
scratch=${DMD2_MUTATION_DIR:-$root/.build-mutation/repo}
only=${1:-}
export DMD2_NUM_THREADS=${DMD2_NUM_THREADS:-2}

# id | file | anchor (text the replacement must follow; empty: file start) | old | new | gradcheck arguments
mutations=$(cat <<'EOF'
silu-x1.001|Sources/DMD2Core/Backend/CPUBackend.swift||zipScalar(a, b, y) { x, g in g * Scalars.sigmoid(x) * (1 + x * Scalars.sigmoid(-x)) }|zipScalar(a, b, y) { x, g in g * Scalars.sigmoid(x) * (1 + x * Scalars.sigmoid(-x)) * 1.001 }|--op silu
silu-x1.0001|Sources/DMD2Core/Backend/CPUBackend.swift||zipScalar(a, b, y) { x, g in g * Scalars.sigmoid(x) * (1 + x * Scalars.sigmoid(-x)) }|zipScalar(a, b, y) { x, g in g * Scalars.sigmoid(x) * (1 + x * Scalars.sigmoid(-x)) * 1.0001 }|--op silu
sigmoid-x1.0001|Sources/DMD2Core/Backend/CPUBackend.swift||case .sigmoidBackward: zipScalar(a, b, y) { x, g in Scalars.sigmoid(x) * Scalars.sigmoid(-x) * g }|case .sigmoidBackward: zipScalar(a, b, y) { x, g in Scalars.sigmoid(x) * Scalars.sigmoid(-x) * g * 1.0001 }|--op sigmoid
softmax-x1.0001|Sources/DMD2Core/Backend/CPUBackend+Norm.swift||for j in 0..<cols { out[j] = yr[j] * (gr[j] - d) }|for j in 0..<cols { out[j] = yr[j] * (gr[j] - d) * 1.0001 }|--op softmax
softmax-drop-dot|Sources/DMD2Core/Backend/CPUBackend+Norm.swift||for j in 0..<cols { out[j] = yr[j] * (gr[j] - d) }|for j in 0..<cols { out[j] = yr[j] * gr[j] }|--op softmax
groupnorm-dgamma-x1.0001|Sources/DMD2Core/Backend/CPUBackend+Norm.swift||dGamma?[c] = T(sg); dBeta?[c] = T(sb)|dGamma?[c] = T(sg * 1.0001); dBeta?[c] = T(sb)|--op groupNorm
groupnorm-drop-mean|Sources/DMD2Core/Backend/CPUBackend+Norm.swift||dxs[row + l] = r * (dys[row + l] * gam - mG - xh * mGX)|dxs[row + l] = r * (dys[row + l] * gam - xh * mGX)|--op groupNorm
gnsilu-dshift-x1.0001|Sources/DMD2Core/Backend/CPUBackend+Norm.swift||dShift[nc] = S(sDz); dScale[nc] = S(sDzXh)|dShift[nc] = S(sDz * 1.0001); dScale[nc] = S(sDzXh)|--op groupNormSiLU
gnsilu-drop-mean|Sources/DMD2Core/Backend/CPUBackend+Norm.swift||store(vr * (lanes(UnsafePointer(dx + row), i, L) * vs - mG - xh * mGX), dx + row, i, L)|store(vr * (lanes(UnsafePointer(dx + row), i, L) * vs - xh * mGX), dx + row, i, L)|--op groupNormSiLU
conv-dw-transposed|Sources/DMD2Ops/Conv2D.swift||shape: [K, O], permutation: [1, 0], UnsafeMutableBufferPointer(start: dws, count: K * O))|shape: [O, K], permutation: [1, 0], UnsafeMutableBufferPointer(start: dws, count: K * O))|--op conv2d
conv-bias-wrong-axis|Sources/DMD2Ops/Conv2D.swift||? dY.reshaped([N * O, L]).sum(axis: 1).reshaped([N, O]).sum(axis: 0) : nil|? dY.reshaped([N * O, L]).sum(axis: 1).reshaped([O, N]).sum(axis: 1) : nil|--op conv2d
conv-col2im-padding|Sources/DMD2Core/Backend/CPUBackend+Conv.swift|static func col2imKernel|let h = i * s + u - p|let h = i * s + u - p + 1|--op conv2d
attention-transposed-gemm|Sources/DMD2Ops/Attention.swift||Compute.backend.gemm(transA: false, transB: true, m: d, n: L, k: L, alpha: scale,|Compute.backend.gemm(transA: false, transB: false, m: d, n: L, k: L, alpha: scale,|--op attention
attention-scale|Sources/DMD2Ops/Attention.swift|// dk = q·dS/√d|alpha: scale,|alpha: scale * scale,|--op attention
avgpool-border|Sources/DMD2Core/Backend/CPUBackend+Conv.swift||for w in 0..<W { dst[w] = src[w / 2] * 0.25 }|for w in 0..<W { dst[w] = w == W - 1 ? 0 : src[w / 2] * 0.25 }|--op avgPool2x2
upsample-border|Sources/DMD2Core/Backend/CPUBackend+Conv.swift||out[j] = top[2 * j] + top[2 * j + 1] + bottom[2 * j] + bottom[2 * j + 1]|out[j] = top[2 * j] + top[2 * j + 1] + bottom[2 * j] + (j == W - 1 ? 0 : bottom[2 * j + 1])|--op upsampleNearest2x
div-drop-factor|Sources/DMD2Ops/Elementwise.swift||needed[1] ? -(g * A / (B * B)) : nil|needed[1] ? -(g / (B * B)) : nil|--op div
adamw-bias-correction|Sources/DMD2Train/AdamW.swift||let stepSize = lr / (1 - Double.pow(β1, k))|let stepSize = lr / (1 - Double.pow(β1, k + 1))|--family adamw
EOF
)

# Copy the working tree into the scratch folder, rewriting only files whose content differs (so
# unchanged files keep their timestamps and the scratch build stays incremental).
sync_tree() {
    mkdir -p "$scratch"
    (cd "$root" && git ls-files -co --exclude-standard -z) | while IFS= read -r -d '' f; do
        [ -f "$root/$f" ] || continue
        if ! cmp -s "$root/$f" "$scratch/$f"; then
            mkdir -p "$(dirname "$scratch/$f")"
            cp -p "$root/$f" "$scratch/$f"
        fi
    done
    [ -f "$root/Package.resolved" ] && { cmp -s "$root/Package.resolved" "$scratch/Package.resolved" || cp -p "$root/Package.resolved" "$scratch/"; }
    # Package dependencies: reuse the main checkout's, so the scratch build needs no network.
    if [ ! -d "$scratch/.build/checkouts" ] && [ -d "$root/.build/checkouts" ]; then
        mkdir -p "$scratch/.build"
        cp -a "$root/.build/checkouts" "$root/.build/repositories" "$root/.build/workspace-state.json" "$scratch/.build/" 2>/dev/null || true
    fi
}

# Replace `old` by `new` in `file`, once, after `anchor` (exit 3 if it does not match exactly once).
apply_patch() {
    python3 - "$@" <<'PY'
import sys
path, anchor, old, new = sys.argv[1:5]
text = open(path, encoding="utf-8").read()
start = 0
if anchor:
    start = text.find(anchor)
    if start < 0:
        sys.exit(3)
at = text.find(old, start)
if at < 0 or (not anchor and text.count(old) != 1):
    sys.exit(3)
open(path, "w", encoding="utf-8").write(text[:at] + new + text[at + len(old):])
PY
}

build() { (cd "$scratch" && swift build -c release --product dmd2 2>&1 | tail -3) >"$scratch/.mutation-build.log" 2>&1 && [ -x "$scratch/.build/release/dmd2" ] && ! grep -q "error:" "$scratch/.mutation-build.log"; }

echo "mutation check: scratch copy $scratch (threads $DMD2_NUM_THREADS)"
sync_tree
start=$(date +%s)
echo "building the unmutated copy..."
build || { cat "$scratch/.mutation-build.log"; echo "the unmutated copy does not build"; exit 2; }

selected=$(printf '%s\n' "$mutations" | while IFS='|' read -r id rest; do
    [ -n "$id" ] || continue
    if [ -z "$only" ] || printf '%s' "$id" | grep -Eq -- "$only"; then printf '%s|%s\n' "$id" "$rest"; fi
done)
[ -n "$selected" ] || { echo "no mutation id matches '$only'"; exit 2; }

# Baselines, on the unmutated build: every check a mutation will run passes without it.
while IFS= read -r args; do
    # shellcheck disable=SC2086
    if ! (cd "$scratch" && .build/release/dmd2 gradcheck $args >"$scratch/.mutation-run.log" 2>&1); then
        grep -A1 '✗' "$scratch/.mutation-run.log" | head -6
        echo "baseline 'dmd2 gradcheck $args' fails without any mutation"; exit 2
    fi
    echo "baseline 'dmd2 gradcheck $args': passes"
done < <(printf '%s\n' "$selected" | cut -d'|' -f6 | sort -u)

results=()
missed=0
while IFS='|' read -r id file anchor old new args; do
    [ -n "$id" ] || continue
    cp -p "$scratch/$file" "$scratch/$file.pristine"
    t0=$(date +%s)
    if ! apply_patch "$scratch/$file" "$anchor" "$old" "$new"; then
        mv "$scratch/$file.pristine" "$scratch/$file"
        results+=("| $id | \`$file\` | \`$args\` | STALE (text not found once) | |")
        missed=$((missed + 1)); echo "$id: STALE"; continue
    fi
    verdict=""
    if ! build; then
        verdict="BUILD FAILED"
        tail -3 "$scratch/.mutation-build.log"
    else
        # shellcheck disable=SC2086
        if (cd "$scratch" && .build/release/dmd2 gradcheck $args >"$scratch/.mutation-run.log" 2>&1); then
            verdict="MISSED"
        else
            status=$?
            failed=$(grep '^FAILED ' "$scratch/.mutation-run.log" | sed -E 's/^FAILED ([a-z-]+): .*/\1/' | sort | uniq -c | awk '{printf "%s%s ×%s", (NR>1?", ":""), $2, $1}')
            first=$(grep -m1 -A1 '✗' "$scratch/.mutation-run.log" | tail -1 | sed -E 's/^ +//' | cut -c1-160 | tr '|' '/')
            if [ -n "$failed" ]; then verdict="caught ($failed)"; else verdict="caught (exit $status: crash or trap)"; fi
        fi
    fi
    mv "$scratch/$file.pristine" "$scratch/$file"
    dt=$(( $(date +%s) - t0 ))
    [[ "$verdict" == caught* ]] || missed=$((missed + 1))
    results+=("| $id | \`$file\` | \`$args\` | $verdict | ${first:-} |")
    echo "$id: $verdict (${dt}s)"
    first=""
done <<<"$selected"

# Rebuild the pristine copy so the next run starts from it.
build || true

echo
echo "| mutation | file | \`dmd2 gradcheck\` | result | first failure |"
echo "|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
echo
echo "$(( ${#results[@]} - missed )) of ${#results[@]} mutations caught in $(( ($(date +%s) - start) / 60 )) min"
[ "$missed" -eq 0 ]
