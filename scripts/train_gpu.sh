#!/usr/bin/env bash
# Train unblur's embedded priors on a GPU machine in one run of about ten minutes, export them as unblur
# checkpoints with model cards, and compare them with the shipped weights.
#
#   OUT=/path/to/results bash scripts/train_gpu.sh            # on the GPU machine (DEVICE=cuda by default)
#   DEVICE=cpu BUDGET_S=20 LIMIT=2 SMALL=1 OUT=/tmp/t bash scripts/train_gpu.sh   # a few steps on a CPU (test)
#
# Each prior gets a share of BUDGET_S seconds (default 540). A short calibration run measures the seconds per
# step, so that the cosine learning-rate schedule ends when the budget does (not cut by --max-minutes). bf16
# autocast, larger networks and patches than the CPU-trained shipped priors. Checkpoints and resume state go
# to $OUT/<prior>/ (last.pt, best.pt); exports to $OUT/<name>.pt with $OUT/<name>.md; the comparison tables
# to $OUT/compare_*.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
UNBLUR="$PY -m unblur"
DATA="${UNBLUR_DATA:-$(cd .. && pwd)/shared/data}"
OUT="${OUT:?set OUT to the results folder}"
DEVICE="${DEVICE:-cuda}"
BUDGET_S="${BUDGET_S:-540}"
LIMIT="${LIMIT:-68}"
mkdir -p "$OUT"

if [ "${SMALL:-0}" = 1 ]; then   # CPU test: tiny networks and batches
    GRAY=(--nc 8,16,16,16 --nb 1 --patch 32 --batch 2 --val-images 2)
    COLOR=(--nc 8,16,16,16 --nb 1 --patch 32 --batch 2 --val-images 2)
    KERNEL=(--features 8 --blocks 2 --batch 4)
else
    GRAY=(--nc 64,128,256,256 --nb 2 --patch 128 --batch 64 --lr 4e-4)
    COLOR=(--nc 64,128,256,256 --nb 2 --patch 128 --batch 64 --lr 4e-4)
    KERNEL=(--features 64 --blocks 8 --batch 256 --lr 1e-3)
fi

# steps that fit SECONDS, from a 20-step calibration run of the same command
steps_for() {
    local seconds=$1; shift
    rm -rf "$OUT/calib"
    $UNBLUR train "$@" --steps 20 --val-every 0 --device "$DEVICE" --precision bf16 --no-progress --out "$OUT/calib" >/dev/null
    $PY - "$OUT/calib/last.pt" "$seconds" <<'PY'
import sys
from unblur.models.checkpoints import read_checkpoint
ck = read_checkpoint(sys.argv[1])
per_step = max(ck["wall_s"], 1e-3) / max(ck["step"], 1)
print(max(20, int(float(sys.argv[2]) / per_step)))
PY
}

train() {  # name, share of the budget, unblur train arguments...
    local name=$1 share=$2; shift 2
    local seconds steps resume=()
    [ -f "$OUT/$name/last.pt" ] && resume=(--resume)   # a second call continues an interrupted run
    seconds=$($PY -c "print(max(5.0, $BUDGET_S * $share))")
    steps=$(steps_for "$seconds" "$@")
    echo "== $name: $steps steps (~${seconds%.*} s) on $DEVICE"
    local t0=$SECONDS
    $UNBLUR train "$@" --steps "$steps" --device "$DEVICE" --precision bf16 --ckpt-minutes 2 --no-progress \
        --out "$OUT/$name" --export "$OUT/$name.pt" "${resume[@]}"
    echo "$name $steps $((SECONDS - t0))" >> "$OUT/trained.txt"
}

rm -f "$OUT/trained.txt"
train unblur_denoiser_gray 0.4 denoiser --data "$DATA/train/train400_gray" --channels 1 "${GRAY[@]}"
train unblur_denoiser_color 0.4 denoiser --data "$DATA/train/cbsd432_color" --channels 3 "${COLOR[@]}"
train unblur_kernel_denoiser_33 0.2 kernel-denoiser --size 33 "${KERNEL[@]}"
rm -rf "$OUT/calib"

# side by side with the shipped priors (same protocol as BENCHMARKS.md "Learned priors")
$PY benchmarks/denoisers.py --priors "default,$OUT/unblur_denoiser_gray.pt" --limit "$LIMIT" --sigmas 15,25,50 \
    > "$OUT/compare_gray.md"
$PY benchmarks/denoisers.py --color --priors "default,$OUT/unblur_denoiser_color.pt" --limit "$LIMIT" --sigmas 15,25,50 \
    > "$OUT/compare_color.md"
$PY benchmarks/kernel_denoiser.py --sizes 33 > "$OUT/compare_kernel_shipped.md"
$PY benchmarks/kernel_denoiser.py --sizes 33 --spec "$OUT/unblur_kernel_denoiser_33.pt" > "$OUT/compare_kernel_new.md"

# one model card per export
while read -r name steps seconds; do
    {
        echo "# $name (GPU recipe)"
        echo
        echo "Trained by \`scripts/train_gpu.sh\` (unblur $($PY -c 'import unblur; print(unblur.__version__)')) on $DEVICE"
        echo "($($PY -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU")')),"
        echo "bf16 autocast, $steps optimiser steps in $seconds s. Data: \`train/train400_gray\` (gray),"
        echo "\`train/cbsd432_color\` (colour; BSDS, non-commercial research use) or synthetic camera-shake kernels."
        echo
        echo "Measured quality, side by side with the shipped prior:"
        echo
        case $name in
            *gray*) cat "$OUT/compare_gray.md" ;;
            *color*) cat "$OUT/compare_color.md" ;;
            *) echo "shipped:"; cat "$OUT/compare_kernel_shipped.md"; echo; echo "this run:"; cat "$OUT/compare_kernel_new.md" ;;
        esac
    } > "$OUT/$name.md"
done < "$OUT/trained.txt"
echo "done: $(cut -d' ' -f1 "$OUT/trained.txt" | tr '\n' ' ')in $OUT"
