#!/usr/bin/env bash
# The full `mode-connectivity` and `lottery` recipes on MNIST (`--datasets mnist`: LeNet-300-100 at paper
# length), each timed, then the 30-point ResNet-20 stability path. Everything small comes back as one archive,
# $OUT/results.tgz (the recipes' JSON, reports without SVGs, logs), rewritten after each step so that a step cut
# short by the time limit leaves the others' results; the weights stay on the machine.
#   OUT=/some/dir DATA=carry/data [ONLY=mode-connectivity] MC_LIMIT=330 LOT_LIMIT=370 bash bench/gpu_recipes.sh
set -uo pipefail
OUT=${OUT:-bench/out}; DATA=${DATA:-carry/data}
export PYTHONPATH=src
W=$(mktemp -d); mkdir -p "$OUT" "$W/res"
pack() { tar czf "$OUT/results.tgz.tmp" -C "$W" res && mv "$OUT/results.tgz.tmp" "$OUT/results.tgz"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch, sys; print(torch.__version__, torch.cuda.get_device_name(0), sys.version)"; } > "$W/res/gpu.txt" 2>&1
for spec in "mode-connectivity ${MC_LIMIT:-330}" "lottery ${LOT_LIMIT:-370}"; do
  set -- $spec
  case " ${ONLY:-mode-connectivity lottery} " in *" $1 "*) ;; *) continue ;; esac
  s=$(date +%s.%N)
  timeout "$2" python -m lth recipe "$1" --datasets mnist --root "$W/$1" --data-dir "$DATA" --json \
    > "$W/res/$1.json" 2> "$W/res/$1.log"
  rc=$?
  echo "{\"recipe\": \"$1\", \"rc\": $rc, \"wall_seconds\": $(python -c "import time; print(round(time.time() - $s, 1))"), \"runs_done\": $(find "$W/$1" -name done.json | wc -l)}" >> "$W/res/times.jsonl"
  [ -d "$W/$1/report" ] && cp -r "$W/$1/report" "$W/res/$1_report" && rm -f "$W/res/$1_report"/*.svg
  pack
done
timeout 30 python bench/stability_path.py --device cuda --repeats 5 > "$W/res/stability_path.json" 2> "$W/res/stability_path.err"
pack
cat "$W/res/times.jsonl" "$W/res/stability_path.json"
