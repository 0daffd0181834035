#!/usr/bin/env bash
# The GPU check, one prepared command for one CUDA GPU (planned for under 8 minutes):
#
#   1. the CUDA tests (pytest -m cuda: the solver on cuda, automatic sample chunking,
#      batched vs one-at-a-time samples),
#   2. `reddiff benchmark` at 256 px (solver overhead, DPS, batching, peak memory),
#   3. the solver comparison (benchmarks/solvers.py) at 256 px on cuda, every task, without the
#      CPU-only truth-tuned classical methods (the CPU table has them). It saves after each task,
#      so the time limit below still leaves the tasks that finished.
#
# Everything goes into one folder: $OUT if set, else gpu-check-<date>/. Usage:
#
#   OUT=/some/folder bash benchmarks/gpu_check.sh
#
# Exit status 0 when every stage passed; each stage's log is in the folder either way.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-check-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
started=$SECONDS
status=0

stage() {  # stage NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc in $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
    [ "$rc" -eq 0 ] || status=1
}

python -c "import reddiff" 2>/dev/null || pip install --no-deps -q -e . >"$OUT/install.log" 2>&1
{ nvidia-smi; python -c "import torch, deepinv, reddiff; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'deepinv', deepinv.__version__, 'reddiff', reddiff.__version__, torch.cuda.get_device_name(0))"; } \
    >"$OUT/environment.txt" 2>&1 || { echo "no usable CUDA GPU: see $OUT/environment.txt"; exit 1; }

stage cuda_tests 120 python -m pytest -o addopts="" -m cuda -rA tests/toolkit/test_solver_cuda.py
stage reddiff_benchmark 120 python -m reddiff benchmark --size 256 --device cuda
stage solvers_256 330 python benchmarks/solvers.py --device cuda --size 256 --mri-size 256 --repeats 3 \
    --solvers RED-Diff "RED-Diff (tuned)" DPS PiGDM DiffPIR DDRM \
    --tasks ct30 inpainting deblur sr4 sky mri4 mri8 --out "$OUT/solvers"

echo "gpu check: exit $status in $((SECONDS - started)) s; outputs in $OUT" | tee -a "$OUT/summary.txt"
exit $status
