#!/usr/bin/env bash
# A short GPU probe before the long benchmarks: populations at once (bench/streams.py), the stability path with
# and without one-by-one evaluation, the reduced F&C figure as one command with --streams 1 and 3, the CUDA tests.
#   OUT=/some/dir DATA=carry/data bash bench/gpu_probe.sh
set -uo pipefail
OUT=${OUT:-bench/out}; DATA=${DATA:-carry/data}
export PYTHONPATH=src LTH="python -m lth"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python -c "import torch, sys; print(torch.__version__, torch.cuda.get_device_name(0), sys.version)" >> "$OUT/gpu.txt"
python -c "import rich, pandas, matplotlib, sklearn" 2>> "$OUT/gpu.txt" || timeout 20 pip install -q --retries 0 rich pandas matplotlib scikit-learn >> "$OUT/gpu.txt" 2>&1
t0=$(date +%s)
timeout 60 python bench/streams.py --iterations 10000 > "$OUT/streams.txt" 2>&1; echo "streams $(( $(date +%s) - t0 )) s" >> "$OUT/times.txt"
for m in off on; do
  timeout 40 python bench/stability_path.py --device cuda --one-by-one $m > "$OUT/stability_path_$m.json" 2> "$OUT/stability_path_$m.err"
done; echo "stability $(( $(date +%s) - t0 )) s" >> "$OUT/times.txt"
for s in 3 1; do
  ( time timeout 70 bash bench/lottery_mnist.sh "$OUT/fc$s" "$DATA" 20000it 5 3 --streams $s ) > "$OUT/fc_streams$s.txt" 2>&1
  rm -rf "$OUT"/fc$s/lottery_*
  echo "fc$s $(( $(date +%s) - t0 )) s" >> "$OUT/times.txt"
done
timeout 90 python -m pytest -q -p no:cacheprovider tests/engine/test_cuda.py tests/executor/test_local.py -k "not compiled" > "$OUT/cuda_tests.txt" 2>&1
echo "tests $(( $(date +%s) - t0 )) s" >> "$OUT/times.txt"
ls -la "$OUT"
