#!/usr/bin/env bash
# The Frankle & Carbin figure on MNIST as ONE command: LeNet-300-100 IMP (fc 20% / output 10% per level, reset
# to init) with the random-reinitialisation and random-mask branches at every level, planned as one graph (each
# branch trains in the population of the trunk level whose ticket it needs). Creates ROOT, writes
# ROOT/lottery.json, prints the table (mean and min-max over replicates) and one JSON line with the wall time.
#   bash bench/lottery_mnist.sh ROOT DATA_DIR [TRAINING_STEPS=5ep] [REPLICATES=5] [LEVELS=15]
#   paper length: bash bench/lottery_mnist.sh ROOT DATA_DIR 50000it 5 20    (21 x 5 + 2 x 20 x 5 = 305 runs)
set -euo pipefail
root=$1; data=$2; steps=${3:-5ep}; reps=${4:-5}; levels=${5:-15}
case "$steps" in *it|*ep) ;; *) steps="${steps}ep" ;; esac  # a bare number means epochs
lth="${LTH:-lth}"
mkdir -p "$root"
start=$(date +%s.%N)
$lth lottery --preset lenet_300_100 --levels "$levels" --branches reinit random-mask --training-steps "$steps" \
  --replicates "$reps" --root "$root" --data-dir "$data" --json "${@:6}" > "$root/lottery.json"
end=$(date +%s.%N)
python "$(dirname "$0")/lottery_table.py" "$root"
python - "$root" "$start" "$end" "$steps" "$reps" "$levels" <<'PY'
import json, sys
root, start, end, steps, reps, levels = sys.argv[1:]
doc = json.load(open(f"{root}/lottery.json"))
runs = len(doc["runs"]) + len(doc.get("branches", []))
print(json.dumps({"bench": "lottery_mnist", "training_steps": steps, "replicates": int(reps), "levels": int(levels),
                  "runs": runs, "seconds": round(float(end) - float(start), 1)}))
PY
