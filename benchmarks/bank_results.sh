#!/usr/bin/env bash
# The lower-face-bank preset (each frame reads the one bank mouth shaped most like its own, in the
# frame's colours, face-only warp, blend head, held from frame to frame) trained within the hour
# budget on the three Obama clips and GRID s1 at 256², the two runs side by side (one thread
# each), with snapshots at 600 and 1000 steps; each dataset's snapshots and final renderer
# evaluated together with the static baseline on the held-out segments. Writes
# benchmarks/results/bank_eval_{obama,grid_s1}.json and bank_samples_{obama,grid_s1}.png
# (open-mouth held-out frames at native size: static | step 600 | 1000 | last step | real). Runs
# resume if interrupted.
#   bash benchmarks/bank_results.sh [DATA_DIR] [RUNS_DIR]
# OBAMA_STEPS and GRID_STEPS (default 2000 each), EVAL_CLIPS (20); TAG names the results
# bank_eval_TAG_{obama,grid_s1}.json and bank_samples_TAG_*.png instead (another version of the preset).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data}
runs=${2:-runs/bank}
bin=${BIN:-.venv/bin}
declare -A steps=([obama]=${OBAMA_STEPS:-2000} [grid_s1]=${GRID_STEPS:-2000})
eval_clips=${EVAL_CLIPS:-20}
results=benchmarks/results
tag=${TAG:+${TAG}_}
mkdir -p "$results" "$runs"
bash benchmarks/prepare_real_datasets.sh "$data"

for name in obama grid_s1; do
  OMP_NUM_THREADS=1 $bin/newsanchor train renderer "$data/$name" --preset lower-face-bank --max-steps "${steps[$name]}" \
    --snapshot-steps 600,1000 --loader-workers 1 --quiet --out "$runs/$name" &
done
wait
for name in obama grid_s1; do
  snapshots=()
  for step in 600 1000; do  # the snapshots up to the last step
    if [ "$step" -le "${steps[$name]}" ]; then snapshots+=("$(printf "%s/%s/step_%07d" "$runs" "$name" "$step")"); fi
  done
  clips=()
  [ "$name" = grid_s1 ] && clips=(--clips "$eval_clips")
  OMP_NUM_THREADS=2 $bin/newsanchor evaluate renderer "$data/$name" "${snapshots[@]}" "$runs/$name" "${clips[@]}" \
    --samples 3 --open-mouths --samples-png "$results/bank_samples_$tag$name.png" --json --quiet > "$results/bank_eval_$tag$name.json"
done
