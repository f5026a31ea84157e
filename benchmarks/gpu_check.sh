#!/usr/bin/env bash
# Every GPU check of segzoo in one run, everything it produced in ONE archive: $OUT/segzoo-gpu-check.tar.gz
# (docs/performance.md, "GPU"). On the GPU machine, from the project root, after ../shared/device/prepare.sh here:
#   bash .device/run.sh bash benchmarks/gpu_check.sh
# Stages, each bounded so the whole run stays within GPU_CHECK_SECONDS (default 480); a stage that fails or runs out
# of time is recorded in summary.txt and the next one still runs:
#   1. the machine: nvidia-smi, torch, CUDA and cuDNN versions
#   2. bench --quick --device cuda: U-Net and PyConvU-Net, the goal ratios per PyConv implementation, training probes
#   3. pytest -m gpu: the bundles on cuda (amp fp16/bf16, channels_last, compile), evaluation, inference, DDP on NCCL
#   4. bench --device cuda: every architecture, with the time left
#   5. bench --quick --device cuda --cudnn-benchmark, with the time left
#   6. reproduce-pyconvunet: `segzoo reproduce pyconvunet-table2` on ISBI, rows U-Net and PyConvU-Net, the recipe's
#      50 epochs, 2 seeds (about 5 minutes of an H200: 0.36 s and 2.59 s per epoch), tables into the archive
#   7. reproduce-frem: `segzoo reproduce frem-table2` on the Drosophila stack, rows U-Net + SEblock and the proposed
#      method, shortened to 40 epochs (of 2000), 2 seeds (about 1.5 minutes), tables into the archive
# GPU_CHECK_STAGES picks stages by name (default: stages 1-5, in this order), e.g. a second call with the device time
# left: GPU_CHECK_STAGES=bench-full. The reproduce step, within 8 minutes:
#   GPU_CHECK_STAGES="machine reproduce-pyconvunet reproduce-frem" bash benchmarks/gpu_check.sh A bench stopped at its limit leaves the sections it finished in its .json.
# Without CUDA it still runs: the tests report themselves skipped and the bench says why it cannot start.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/.gpu-check}
PYTHON=${PYTHON:-python}
BUDGET=${GPU_CHECK_SECONDS:-480}
DATA=${SEGZOO_DATA:-../shared/data}  # isbi2012/ and drosophila_vnc/ (../shared/data/*/README.md)
STAGES=" ${GPU_CHECK_STAGES:-machine bench-quick pytest-gpu bench-full bench-quick-cudnn-benchmark} "
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} PYTHONUNBUFFERED=1
WORK=$(mktemp -d)/segzoo-gpu-check
mkdir -p "$WORK" "$OUT"
started=$SECONDS

# stage NAME LIMIT COMMAND...: runs COMMAND for at most LIMIT seconds (and never past the budget), log in NAME.log
stage() {
  local name=$1 limit=$2
  shift 2
  [[ $STAGES == *" $name "* ]] || return 0
  local left=$((BUDGET - (SECONDS - started)))
  ((limit > left)) && limit=$left
  if ((limit < 30)); then
    echo "$name: skipped, ${left}s of the ${BUDGET}s budget left" | tee -a "$WORK/summary.txt"
    return
  fi
  echo "== $name (at most ${limit}s): $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >"$WORK/$name.log" 2>&1
  local rc=$?
  local note=""
  ((rc == 124 || rc == 137)) && note=" (stopped at its ${limit}s limit)"
  echo "$name: exit $rc$note after $((SECONDS - t0))s" | tee -a "$WORK/summary.txt"
  tail -n 15 "$WORK/$name.log"
}

# keep_bench SUFFIX: the bench's report of the stage that just ran, under its own name
keep_bench() {
  for ext in md json; do
    [ -f .bench/bench-cuda.$ext ] && mv .bench/bench-cuda.$ext "$WORK/bench-cuda$1.$ext"
  done
}

stage machine 60 bash -c "nvidia-smi; $PYTHON -c 'import torch; print(\"torch\", torch.__version__, \"CUDA\", torch.version.cuda, \"cuDNN\", torch.backends.cudnn.version(), \"GPUs\", torch.cuda.device_count())'"
rm -f .bench/bench-cuda.md .bench/bench-cuda.json
stage bench-quick 170 "$PYTHON" benchmarks/bench.py --quick --device cuda
keep_bench -quick
stage pytest-gpu 240 "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider --junitxml="$WORK/pytest-gpu.xml" tests
stage bench-full 400 "$PYTHON" benchmarks/bench.py --device cuda
keep_bench -full
stage bench-quick-cudnn-benchmark 170 "$PYTHON" benchmarks/bench.py --quick --device cuda --cudnn-benchmark
keep_bench -quick-cudnn-benchmark
# the reproduce step: each table (reproduce.md, reproduce.csv, the state with every seed's per-image test scores) lands
# in the archive; rerun with the same output folder, a table stopped at its limit resumes per seed
stage reproduce-pyconvunet 330 "$PYTHON" -m segzoo reproduce pyconvunet-table2 --dataset_dir "$DATA/isbi2012" \
  --rows U-Net,PyConvU-Net --seeds 2 --output "$WORK/reproduce/pyconvunet-table2" --tracking_uri "sqlite:///$WORK/mlflow.db"
stage reproduce-frem 130 "$PYTHON" -m segzoo reproduce frem-table2 --dataset_dir "$DATA/drosophila_vnc" --epochs 40 \
  --rows "U-Net + SEblock,Proposed method" --seeds 2 --output "$WORK/reproduce/frem-table2" --tracking_uri "sqlite:///$WORK/mlflow.db"
rm -rf "$WORK"/reproduce/*/runs  # checkpoints stay out of the archive; the tables and states go in

tar -czf "$OUT/segzoo-gpu-check.tar.gz" -C "$(dirname "$WORK")" segzoo-gpu-check
echo "== summary ($((SECONDS - started))s of ${BUDGET}s); archive: $OUT/segzoo-gpu-check.tar.gz"
cat "$WORK/summary.txt"
for report in "$WORK"/bench-cuda-quick.md; do [ -f "$report" ] && sed -n '/per PyConv implementation/,/^## Training/p' "$report"; done
for table in "$WORK"/reproduce/*/reproduce.md; do [ -f "$table" ] && sed -n '/^## Against the reference row/,$p' "$table"; done
