#!/usr/bin/env bash
# The lottery-ticket effect on MNIST: LeNet-300-100 IMP (fc 20%/output 10% per level, reset to init) down to
# ~3.5% density with short training, beside the random-reinitialisation and random-mask branches.
#   bash bench/lottery_mnist.sh ROOT DATA_DIR [EPOCHS] [REPLICATES]   (prints JSON of the three to stdout files)
set -euo pipefail
root=$1; data=$2; epochs=${3:-5}; reps=${4:-5}
lth="${LTH:-lth}"
common=(--preset lenet_300_100 --training-steps "${epochs}ep" --replicates "$reps" --root "$root" --data-dir "$data" --json)
$lth lottery --levels 15 "${common[@]}" > "$root/lottery.json"
$lth branch reinit --levels 1-15 "${common[@]}" > "$root/reinit.json"
$lth branch random-mask --levels 1-15 "${common[@]}" > "$root/random_mask.json"
