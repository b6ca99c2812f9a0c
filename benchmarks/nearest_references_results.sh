#!/usr/bin/env bash
# Reference mouths chosen per frame from a bank (--preset lower-face-nearest) against the three
# fixed ones of the default preset, on GRID s1 and the three Obama clips at 256²: each renderer
# 600 steps from the same seed (one thread per run, runs side by side), evaluated side by side
# on the held-out segments with the static baseline. Writes benchmarks/results/
# nearest_references_eval_{grid_s1,obama}.json and nearest_references_samples_{grid_s1,obama}.png
# (open-mouth held-out frames at native size: static | renderers… | real). Runs resume if
# interrupted; a dataset already prepared (by lower_face_results.sh) is reused.
#   bash benchmarks/nearest_references_results.sh [DATA_DIR] [RUNS_DIR]
# STEPS (default 600), EVAL_CLIPS (20).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data}
runs=${2:-runs/nearest_references}
bin=${BIN:-.venv/bin}
steps=${STEPS:-600}
eval_clips=${EVAL_CLIPS:-20}
results=benchmarks/results
mkdir -p "$results" "$runs"
bash benchmarks/prepare_real_datasets.sh "$data"
printf 'lambda_choice: 0.5\n' > "$runs/choice.yaml"

train() { OMP_NUM_THREADS=1 $bin/newsanchor train renderer "$@" --max-steps "$steps" --loader-workers 1 --quiet; }
for name in obama grid_s1; do
  train "$data/$name" --preset lower-face --out "$runs/${name}_states_rgb" &
  train "$data/$name" --preset lower-face-nearest --head blend --reference-warp mouth \
    --out "$runs/${name}_nearest_blend" &
  train "$data/$name" --preset lower-face-nearest --head blend --reference-warp mouth-only \
    --out "$runs/${name}_nearest_blend_mouth_only" &
  wait
  train "$data/$name" --preset lower-face-nearest --head blend --reference-warp mouth-only \
    --config "$runs/choice.yaml" --out "$runs/${name}_nearest_blend_mouth_only_choice"
  clips=()
  [ "$name" = grid_s1 ] && clips=(--clips "$eval_clips")
  OMP_NUM_THREADS=1 $bin/newsanchor evaluate renderer "$data/$name" "$runs/${name}_states_rgb" \
    "$runs/${name}_nearest_blend" "$runs/${name}_nearest_blend_mouth_only" \
    "$runs/${name}_nearest_blend_mouth_only_choice" "${clips[@]}" --samples 3 --open-mouths \
    --samples-png "$results/nearest_references_samples_$name.png" --json --quiet \
    > "$results/nearest_references_eval_$name.json"
done
