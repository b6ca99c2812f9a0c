#!/usr/bin/env bash
# Table 1, Table 2 and Figure 5 of the audio→mouth stage on GRID s1 (issue: audio→mouth).
# Prepares GRID s1 (if not yet), trains the four models for two seeds each on this machine until
# validation stops improving, and evaluates them all in one process. Runs resume if interrupted.
#   bash benchmarks/mouth_results.sh [DATA_DIR] [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data/grid_s1}
runs=${2:-runs/mouth}
bin=${BIN:-.venv/bin}
[ -f "$data/manifest.json" ] || $bin/newsanchor prepare ../shared/data/grid_s1 --out "$data" --size 256
run_list=()
for seed in 0 1; do
  for model in tcn-gan tcn lstm bilstm; do
    # one thread per run, two runs at a time: the 2-core machine's best throughput
    OMP_NUM_THREADS=1 $bin/newsanchor train mouth "$data" --model "$model" --seed "$seed" \
      --config configs/train_mouth.yaml --out "$runs/$model-s$seed" --quiet &
    run_list+=("$runs/$model-s$seed")
    if (( $(jobs -r | wc -l) >= 2 )); then wait -n; fi
  done
done
wait
$bin/newsanchor evaluate mouth "$data" "${run_list[@]}" --report benchmarks/results > /dev/null
cat benchmarks/results/mouth_tables.md
