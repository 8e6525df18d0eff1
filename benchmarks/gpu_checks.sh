#!/usr/bin/env bash
# The GPU checks of README "Finite width" > "GPU backend", in one call (about 10 minutes on one H200: give it 600 s):
#
#     OUT=results/gpu bash benchmarks/gpu_checks.sh            # on a machine with a CUDA device and PyTorch
#     SMALL=1 OUT=/tmp/gpu bash benchmarks/gpu_checks.sh       # the same steps on the CPU at toy sizes (a dry run)
#
# 1. the PyTorch backend's tests, CPU and CUDA cases (tests/test_finite_width_torch.py, _backends.py);
# 2. benchmarks/bench_chaos_backends.py on the device: one RK4 step at m = 2^10 … 2^16, d = 32, NumPy float64
#    (CPU, 16 BLAS threads) against PyTorch float64 and float32 on the device, and short coupled runs;
# 3. `reduced-pde chaos` end to end (configs/chaos_sphere_he4.toml at d = 32, one network, no prediction):
#    m = 2^16 in float32 to t = 1 (the "m = 2^16 at d = 32 in minutes"); float32 against float64 at
#    m = 2^16 to t = 0.1 and at m = 2^14 to t = 1 (benchmarks/gpu_precision_report.py prints the differences).
# Each step has its own time limit and the steps do not depend on each other's success: whatever ran is in $OUT.
set -u
OUT=${OUT:?set OUT to the folder for the logs and files}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 NUMBA_NUM_THREADS=1
PY=${PYTHON:-python3}
if [ "${SMALL:-0}" = 1 ]; then
    DEVICE=cpu; BIG=256; MID=128; BENCH=(--widths 64 128 --run-max 64 --run-nodes 32 --threads 1)
else
    DEVICE=cuda; BIG=65536; MID=16384; BENCH=(--threads 16)
fi
LOG="$OUT/log.txt"  # one log (a device call returns at most 8 files: this, bench.json and the 5 runs)
stamp() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$LOG"; }

stamp environment
{ nvidia-smi 2>&1 | head -15; "$PY" -c "import sys, numpy, scipy, numba, h5py, torch
print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'numba',
      numba.__version__, 'h5py', h5py.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda,
      'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')"; } 2>&1 | tee -a "$LOG"

stamp tests
timeout 240 "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_finite_width_torch.py \
    tests/test_finite_width_backends.py 2>&1 | tee -a "$LOG"

stamp benchmark
timeout 200 "$PY" benchmarks/bench_chaos_backends.py --device "$DEVICE" "${BENCH[@]}" --json "$OUT/bench.json" 2>&1 \
    | tee -a "$LOG"

chaos() {  # chaos NAME WIDTH PRECISION T_FINAL N_OUTPUTS LIMIT_S [--quiet]
    stamp "chaos m = $2 $3 to t = $4"
    timeout "$6" "$PY" -m reduced_pde chaos configs/chaos_sphere_he4.toml -o "$OUT/$1.h5" ${7:-} \
        --set data.dimension=32 --set "chaos.widths=[$2]" --set "chaos.seeds=[0]" --set 'chaos.backend="torch"' \
        --set "chaos.device=\"$DEVICE\"" --set "chaos.precision=\"$3\"" --set chaos.predict=false \
        --set "output.t_final=$4" --set "output.n_outputs=$5" 2>&1 | tee -a "$LOG"
}
# (on one H200, 2026-11-30: 28 s, 31 s, 62 s, the float64 one past the call's limit, then 247 s; the order
# puts the float32 checks first, the long timing last)
chaos short_float32 "$BIG" float32 0.1 4 90 --quiet
chaos short_float64 "$BIG" float64 0.1 4 120 --quiet
chaos mid_float32 "$MID" float32 1.0 10 120 --quiet
chaos mid_float64 "$MID" float64 1.0 10 150 --quiet
chaos big_float32 "$BIG" float32 1.0 10 300          # with the progress bar: its rate is in the log if cut off
stamp report
"$PY" benchmarks/gpu_precision_report.py "$OUT" 2>&1 | tee -a "$LOG"
stamp done
