#!/usr/bin/env bash
# One GPU session's checks and benchmarks, each under its own time limit so one slow piece cannot hide the rest.
# Results go to $OUT (default bench/out): the F&C figure at paper length as one command (JSON + table), the CUDA
# tests, a 30-point ResNet-20 instability path with BatchNorm recomputation, and converted modules vs lth's own.
#   OUT=/some/dir DATA=carry/data bash bench/gpu_session.sh
set -uo pipefail
OUT=${OUT:-bench/out}; DATA=${DATA:-carry/data}
export PYTHONPATH=src LTH="python -m lth"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python -c "import torch, sys; print(torch.__version__, torch.cuda.get_device_name(0), sys.version)" >> "$OUT/gpu.txt"
python -c "import rich, pandas, matplotlib, sklearn" 2>> "$OUT/gpu.txt" || timeout 10 pip install -q --retries 0 rich pandas matplotlib scikit-learn >> "$OUT/gpu.txt" 2>&1
# 1. Frankle & Carbin LeNet-300-100 figure at paper length: 21 levels x 5 + 2 branches x 20 x 5 = 305 runs
( time timeout "${FC_LIMIT:-360}" bash bench/lottery_mnist.sh "$OUT/fc" "$DATA" 50000it 5 20 ) > "$OUT/fc.txt" 2>&1
rm -rf "$OUT"/fc/lottery_*  # keep the JSON and the table, not the weights
# 2. CUDA paths
timeout 90 python -m pytest -q tests/engine/test_cuda.py tests/models/test_from_module.py tests/analysis/test_hessian.py \
  -k "cuda or graph" > "$OUT/cuda_tests.txt" 2>&1
# 3. one 30-point ResNet-20 path with BN recomputation
timeout 45 python bench/stability_path.py --device cuda > "$OUT/stability_path.json" 2> "$OUT/stability_path.err"
# 4. converted modules vs lth's own models
timeout 45 python bench/from_module.py --device cuda > "$OUT/from_module.json" 2> "$OUT/from_module.err"
ls -la "$OUT"
