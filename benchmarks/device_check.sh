#!/bin/bash
# The GPU checks, as one script for a machine with an NVIDIA GPU and the
# image's own Python (jax with its CUDA plugin, flax, optax, pytest, mpmath,
# matplotlib). Wheels for what the image lacks (neural-tangents, frozendict,
# gmpy2) are installed from .whl/ when that folder exists. Writes its logs
# and results to $OUT (default: gpu-check/).
set -uo pipefail
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
source "$(dirname "$0")/gpu_python_env.sh"
# Several test processes share the GPU: allocate on demand.
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
{
    nvidia-smi -L
    python3 -c "import sys, jax, jaxlib; print('python', sys.version.split()[0], 'jax', jax.__version__, 'jaxlib', jaxlib.__version__, jax.devices())"
    python3 -m ntkdepth.kernels.check_bridge
} 2>&1 | tee "$OUT/env.txt"
# The jax-version test builds environments from the package index: not here.
timeout 300 python3 -m pytest -q -p no:cacheprovider tests --ignore=tests/test_jax_versions.py \
    --durations=10 2>&1 | tee "$OUT/pytest.txt"
timeout 420 python3 benchmarks/bench_kernels.py --skip tiled --out "$OUT/bench_gpu.json" 2>&1 \
    | tee "$OUT/bench.txt"
for e in fig4 fig7; do
    start=$(date +%s)
    timeout 200 python3 -m ntkdepth.cli run $e --preset paper --out /tmp/$e-gpu 2>&1 | tail -4
    echo "$e paper preset on GPU: $(( $(date +%s) - start )) s" >> "$OUT/env.txt"
    cp /tmp/$e-gpu/$e.png "$OUT/${e}_paper_gpu.png"
    cp /tmp/$e-gpu/summary.md "$OUT/${e}_paper_gpu_summary.md"
done
