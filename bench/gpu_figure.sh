#!/usr/bin/env bash
# The Frankle & Carbin figure at paper length (305 runs: IMP levels 0-20 with reinit and random-mask, 5 replicates,
# 50K iterations) as one command, with the fastest float32 step bench/wave_profile.py finds for its 15-LeNet wave:
# autograd (the default), the hand-written backward (--mlp-backward manual) or both compiled (--compile).
# TF32=1 adds --tf32 (faster, rounds differently; reported as such). Results in $OUT (the weights are deleted).
# Fits one device call of 600 s: the figure gets what the pick leaves of 585 s (FC_LIMIT overrides). Run it first in
# a GPU session (it is what the 300 s target is measured by), bench/gpu_session.sh after it if time is left.
#   OUT=/some/dir DATA=carry/data [TF32=1] [FC_LIMIT=480] bash bench/gpu_figure.sh
set -uo pipefail
OUT=${OUT:-bench/out}; DATA=${DATA:-carry/data}
export PYTHONPATH=src LTH="python -m lth"
mkdir -p "$OUT"
configs=fc15,fc15_manual,fc15_compile
[ "${TF32:-0}" = 1 ] && configs=fc15_tf32,fc15_compile_tf32
timeout 170 python bench/wave_profile.py --only $configs --measure 3000 --kernels fc15,fc15_manual \
  > "$OUT/wave_pick.jsonl" 2> "$OUT/wave_pick.err"
flags=$(python - "$OUT/wave_pick.jsonl" "$configs" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
timed = {r["config"]: r["ms_per_step"] for r in rows if "ms_per_step" in r}
best = min(timed, key=timed.get) if timed else ("fc15_tf32" if "tf32" in sys.argv[2] else "fc15")
print({"fc15": "", "fc15_manual": "--mlp-backward manual", "fc15_compile": "--compile", "fc15_tf32": "--tf32",
       "fc15_compile_tf32": "--compile --tf32"}[best])
PY
)
echo "flags: $flags" > "$OUT/fc_flags.txt"
( time timeout "${FC_LIMIT:-$((585 - SECONDS))}" bash bench/lottery_mnist.sh "$OUT/fc" "$DATA" 50000it 5 20 $flags ) > "$OUT/fc.txt" 2>&1
grep -v "^  iteration" "$OUT/fc.txt" > "$OUT/fc_progress.txt"; rm -f "$OUT/fc.txt"
rm -rf "$OUT"/fc/lottery_*
cat "$OUT/fc_flags.txt"; tail -5 "$OUT/fc_progress.txt"
