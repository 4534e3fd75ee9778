#!/usr/bin/env bash
# The GPU path in one command (issue 11), under 8 minutes on one H200:
#   1. the test suite's CUDA-marked tests (pytest -m cuda);
#   2. photostyle speed --device cuda (network knobs, fraction of the GPU's matmul peak);
#   3. photostyle bench --device cuda (paper Table I sizes, network only) and
#      photostyle bench --device cuda --end-to-end (1024x512, 4K, 12 MP; float32 and bfloat16);
#   4. a short training run with AMP: photostyle train --amp, and the affine head's
#      train_affine(amp=True), 50 steps each.
# Everything goes to a results folder: $OUT if set, else ./gpu_check_results (or $1).
# Each step has its own time limit; a failing step is recorded and the next one runs.
# Environment: PYTHON (default python3) with torch (CUDA build) and photostyle's dependencies;
# PHOTOSTYLE_WEIGHTS: stylizer checkpoint to time instead of the shipped default.
# Usage: scripts/gpu_check.sh [RESULTS_DIR]
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
RESULTS="${OUT:-${1:-gpu_check_results}}"
mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
SUMMARY="$RESULTS/summary.md"
WEIGHTS=()
if [[ -n "${PHOTOSTYLE_WEIGHTS:-}" ]]; then
    WEIGHTS=(--weights "$PHOTOSTYLE_WEIGHTS")
fi
START=$SECONDS
FAILED=0

# step NAME LIMIT_SECONDS COMMAND...: run, log to RESULTS/NAME.log, record rc and seconds.
step() {
    local name="$1" limit="$2"
    shift 2
    local t0=$SECONDS rc
    echo "== $name (limit ${limit}s)" | tee -a "$RESULTS/progress.log"
    timeout --kill-after=10 "$limit" "$@" >"$RESULTS/$name.log" 2>&1
    rc=$?
    if [[ $rc -ne 0 ]]; then
        FAILED=$((FAILED + 1))
    fi
    echo "| $name | $rc | $((SECONDS - t0)) |" >>"$SUMMARY"
    echo "   rc=$rc in $((SECONDS - t0)) s" | tee -a "$RESULTS/progress.log"
    return 0
}

{
    echo "# photostyle GPU check"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo none)"
    echo "- torch: $("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1)"
    echo
    echo "| step | exit code | seconds |"
    echo "| --- | ---: | ---: |"
} >"$SUMMARY"

# A tiny training set (two classes of crops of the bundled photos): no data to copy along.
DATA="$RESULTS/train_data"
"$PY" - "$DATA" <<'EOF' >"$RESULTS/train_data.log" 2>&1
import sys
from pathlib import Path

from PIL import Image

root = Path(sys.argv[1])
assets = Path("src/photostyle/assets")
for label, name in (("a", "demo_content.jpg"), ("b", "demo_style.jpg")):
    (root / label).mkdir(parents=True, exist_ok=True)
    img = Image.open(assets / name).convert("RGB")
    w, h = img.size
    for i in range(8):
        box = (i * (w - 256) // 8, i * (h - 256) // 8)
        img.crop((*box, box[0] + 256, box[1] + 256)).save(root / label / f"{i}.jpg", quality=95)
EOF

step pytest_cuda 60 "$PY" -m pytest -q -n 0 -m cuda -p no:cacheprovider tests
step speed 90 "$PY" -m photostyle.cli speed --device cuda "${WEIGHTS[@]}" \
    --sizes 512x256,1024x512 --runs 10 \
    --knobs float32,inference_mode,channels_last,bfloat16,compile,batch=4 \
    --json "$RESULTS/speed.json"
step bench 45 "$PY" -m photostyle.cli bench --device cuda "${WEIGHTS[@]}" \
    --runs 20 --warmup 3 --json "$RESULTS/bench.json"
step bench_end_to_end 150 "$PY" -m photostyle.cli bench --device cuda --end-to-end \
    "${WEIGHTS[@]}" --sizes 1024x512,3840x2160,4000x3000 --dtypes float32,bfloat16 \
    --runs 5 --warmup 2 --json "$RESULTS/end_to_end.json" --plot "$RESULTS/end_to_end.png" \
    --workdir "$RESULTS/end_to_end_work"
step bench_profile 60 "$PY" -m photostyle.cli bench --device cuda --profile "${WEIGHTS[@]}" \
    --sizes 1024x512,4000x3000 --runs 5 --warmup 2 --json "$RESULTS/profile.json" \
    --workdir "$RESULTS/end_to_end_work"
step train_amp 45 "$PY" -m photostyle.cli train --data "$DATA" --out-dir "$RESULTS/train_amp" \
    --steps 50 --batch-size 4 --crop 128 --device cuda --amp --time-limit 35
step train_affine_amp 45 "$PY" -c "
import sys
from photostyle.train.affine import AffineTrainConfig, train_affine
config = AffineTrainConfig(data=sys.argv[1], out_dir=sys.argv[2], steps=50, batch_size=4,
                           crop=128, device='cuda', amp=True, checkpoint_every=50)
print(train_affine(config))
" "$DATA" "$RESULTS/train_affine_amp"

rm -rf "$RESULTS/end_to_end_work" "$DATA"
{
    echo
    echo "total: $((SECONDS - START)) s, failed steps: $FAILED"
    for name in speed bench bench_end_to_end bench_profile; do
        echo
        echo "## $name"
        echo
        grep '^|' "$RESULTS/$name.log" 2>/dev/null || echo "(no table: see $name.log)"
    done
} >>"$SUMMARY"
cat "$SUMMARY"
exit $((FAILED > 0))
