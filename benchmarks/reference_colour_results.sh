#!/usr/bin/env bash
# Reference mouths brought to each frame's colours (match_reference_colours) before the renderer
# reads them, on the three Obama clips and GRID s1 at 256²: the bank of 48 mouths with the blend
# head, each frame reading only the nearest (match1; match3: the three nearest), the nearest cut
# to the mouth and chin (only1, --reference-warp mouth-only) or to the face inside the jaw
# (face1, --reference-warp face-only). 600 steps each from the same seed as
# nearest_references_results.sh (whose runs without the colour match are the comparison), two or
# three side by side, one thread each. Each run is also evaluated with its
# references held from frame to frame (reference_hold, set in a copy of the run: it changes only
# which bank mouths are read, so the weights are the same). Evaluated together with the static
# baseline on the held-out segments. Writes benchmarks/results/reference_colour_eval_{obama,grid_s1}.json
# and reference_colour_samples_{obama,grid_s1}.png (open-mouth held-out frames at native size:
# static | renderers… | real). Runs resume if interrupted.
#   bash benchmarks/reference_colour_results.sh [DATA_DIR] [RUNS_DIR]
# STEPS (default 600), EVAL_CLIPS (20), HOLD (0.2), OBAMA_VARIANTS ("match1 only1 face1"),
# GRID_VARIANTS ("match1 only1").
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data}
runs=${2:-runs/reference_colour}
bin=${BIN:-.venv/bin}
steps=${STEPS:-600}
eval_clips=${EVAL_CLIPS:-20}
hold=${HOLD:-0.2}
declare -A variants=([obama]=${OBAMA_VARIANTS:-match1 only1 face1} [grid_s1]=${GRID_VARIANTS:-match1 only1})
results=benchmarks/results
mkdir -p "$results" "$runs"
bash benchmarks/prepare_real_datasets.sh "$data"
printf 'renderer_overrides:\n  match_reference_colours: true\n' > "$runs/match3.yaml"
printf 'renderer_overrides:\n  match_reference_colours: true\n  references: 1\n' > "$runs/match1.yaml"

train() { OMP_NUM_THREADS=1 $bin/newsanchor train renderer "$@" --max-steps "$steps" --loader-workers 1 --quiet; }
# RUN → RUN_hold: the same weights and bank (hard links), reference_hold set in its renderer.json
held() {
  rm -rf "$1_hold" && mkdir "$1_hold" && ln "$1"/renderer.safetensors "$1"/references.npz "$1_hold"/
  $bin/python -c 'import json, sys; meta = json.load(open(sys.argv[1])); meta["config"]["reference_hold"] = float(sys.argv[3])
json.dump(meta, open(sys.argv[2], "w"), indent=1)' "$1/renderer.json" "$1_hold/renderer.json" "$hold"
}
for name in obama grid_s1; do
  evaluated=()
  for variant in ${variants[$name]}; do
    case $variant in only*) warp=mouth-only ;; face*) warp=face-only ;; *) warp=mouth ;; esac
    yaml=$runs/match${variant: -1}.yaml  # the digit: references per frame
    train "$data/$name" --preset lower-face-nearest --head blend --reference-warp $warp --config "$yaml" \
      --out "$runs/${name}_$variant" &
    evaluated+=("$runs/${name}_$variant" "$runs/${name}_${variant}_hold")
  done
  wait
  for variant in ${variants[$name]}; do held "$runs/${name}_$variant"; done
  clips=()
  [ "$name" = grid_s1 ] && clips=(--clips "$eval_clips")
  OMP_NUM_THREADS=2 $bin/newsanchor evaluate renderer "$data/$name" "${evaluated[@]}" "${clips[@]}" --samples 3 \
    --open-mouths --samples-png "$results/reference_colour_samples_$name.png" --json --quiet \
    > "$results/reference_colour_eval_$name.json"
done
