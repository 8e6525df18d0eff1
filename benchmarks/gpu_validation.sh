#!/usr/bin/env bash
# Many-seed coupled runs at widths this 2-core CPU cannot reach, for a session lent a GPU (README "Finite width",
# the open questions of issue 14), in one call (planned at ~6–8 minutes on one H200; not yet run on one):
#
#     OUT=results/gpu bash benchmarks/gpu_validation.sh          # on a machine with a CUDA device and PyTorch
#     SMALL=1 OUT=/tmp/gpuv bash benchmarks/gpu_validation.sh    # the same commands on the CPU at toy sizes
#
# 1. He_4, d = 32, m = 2048 and 8192, 64 networks each, to t = 0.15: the coupling gap past t = 0.12 (m = 2048
#    with 64 networks is on its limit to 0.12 on the CPU, README);
# 2. Misspecified, d = 16, m = 4096, 64 networks, to t = 0.02: the 1/m approach of m E_t² and √m·gap past
#    m = 1024 (on the CPU m = 1024 with 64 networks is within 1.1 s.e. of e(t), README);
# 3. Circle, d = 16, m = 4096, 64 networks, to t = 1: c(t) after t = 0.4 and t = 1 (e and the coupling gap are
#    validated to 0.8 with 24 networks at m = 1024 and 4096 on the CPU, README).
# PyTorch float64 on the device (float32's error grows with m: README "GPU backend"), no prediction there (it
# is CPU work): make it on any machine with the same command, `--widths 2 --seeds 0` and without
# `--no-prediction`, then compare: python benchmarks/compare_chaos.py OUT/he4_d32.h5 --prediction PRED.h5
set -u
OUT=${OUT:?set OUT to the folder for the logs and files}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 NUMBA_NUM_THREADS=1
PY=${PYTHON:-python3}
LOG="$OUT/log.txt"
stamp() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$LOG"; }
seeds() { "$PY" -c "import sys; print(*range(int(sys.argv[1])))" "$1"; }
if [ "${SMALL:-0}" = 1 ]; then
    DEVICE=cpu; HE4=(16 32); MIS=16; CIR=16; S1=4; S2=4; S3=4
else
    DEVICE=cuda; HE4=(2048 8192); MIS=4096; CIR=4096; S1=64; S2=64; S3=64
fi
GPU=(--no-prediction --set 'chaos.backend="torch"' --set "chaos.device=\"$DEVICE\"" --set 'chaos.precision="float64"')

run() {  # run NAME LIMIT_S CONFIG ARGS...: one `reduced-pde chaos`, its time limit, its line in the log
    local name=$1 limit=$2 config=$3
    shift 3
    stamp "$name"
    timeout "$limit" "$PY" -m reduced_pde chaos "$config" -o "$OUT/$name.h5" --quiet "${GPU[@]}" "$@" 2>&1 | tee -a "$LOG"
}
run he4_d32 240 configs/chaos_sphere_he4.toml --set data.dimension=32 --widths "${HE4[@]}" --seeds $(seeds $S1) \
    --set output.t_final=0.15 --set output.n_outputs=5 --set 'output.spacing="linear"' --set output.t_first=1e-3
run misspecified 200 configs/chaos_sphere_misspecified.toml --widths $MIS --seeds $(seeds $S2)
run circle 150 configs/chaos_sphere_circle.toml --widths $CIR --seeds $(seeds $S3) --set output.t_final=1.0 \
    --set output.n_outputs=7
stamp done
