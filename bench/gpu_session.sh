#!/usr/bin/env bash
# A GPU session's short probe (about 3 minutes): where a lottery wave's step goes (bench/wave_profile.py: the
# F&C and mode-connectivity waves; hand-written, compiled and TF32 steps; a kernel table), the CUDA tests, and the
# 30-point ResNet-20 stability path. The long runs are separate: bench/gpu_recipes.sh (full recipes on MNIST) and
# bench/lottery_mnist.sh (the F&C figure; extra lth flags such as --compile --tf32 go after its 5th argument).
#   OUT=/some/dir bash bench/gpu_session.sh
set -uo pipefail
OUT=${OUT:-bench/out}
export PYTHONPATH=src
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch, sys; print(torch.__version__, torch.cuda.get_device_name(0), sys.version)"; } > "$OUT/gpu.txt" 2>&1
timeout 240 python bench/wave_profile.py > "$OUT/wave_profile.jsonl" 2> "$OUT/wave_profile.err"
timeout 150 python -m pytest -q -p no:cacheprovider tests/engine/test_cuda.py > "$OUT/cuda_tests.txt" 2>&1
timeout 60 python -m pytest -q -p no:cacheprovider tests/models/test_from_module.py tests/analysis/test_hessian.py \
  -k "cuda or gpu or graph" >> "$OUT/cuda_tests.txt" 2>&1
# images read from disk (#30): ResNet-50 at batch 256 on real JPEGs against synthetic data (DALI where installed)
timeout 240 python bench/resnet50_stream.py --device cuda --decoders dali pillow > "$OUT/resnet50_stream.json" \
  2> "$OUT/resnet50_stream.err"
timeout 40 python bench/stability_path.py --device cuda --repeats 5 > "$OUT/stability_path.json" 2> "$OUT/stability_path.err"
ls -la "$OUT"
