#!/bin/bash
# The width-axis GPU run: Table 1's paper preset (widths to 30,000) on one
# accelerator with full float32 matrix precision, plus a precision check of the
# model's matmuls. For a machine with an NVIDIA GPU and the image's own Python
# (jax with its CUDA plugin, flax, optax, orbax); wheels in .whl/ are installed
# first when that folder exists. Data: $NTKDEPTH_DATA (default .scratch/data,
# holding text8/...). Writes to $OUT (default: gpu-width/).
set -uo pipefail
OUT=${OUT:-gpu-width}
mkdir -p "$OUT"
source "$(dirname "$0")/gpu_python_env.sh"
export NTKDEPTH_DATA=${NTKDEPTH_DATA:-$PWD/.scratch/data} PYTHONUNBUFFERED=1
{
    nvidia-smi -L
    python3 -c "import sys, jax, flax, optax, orbax.checkpoint; print('python', sys.version.split()[0], 'jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
    # The model's float32 matmuls against float64: TF32 would leave ~1e-3 relative errors.
    python3 - <<'PY'
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
from ntkdepth.models import MLP
x = np.random.default_rng(0).normal(size=(64, 100))
net = MLP(100, [4096, 4096], 10, rngs=0)
got = np.asarray(net(jnp.asarray(x, jnp.float32))[1])
graphdef, params = nnx.split(net)
with jax.enable_x64(True):
    p64 = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float64), params)
    ref = np.asarray(nnx.merge(graphdef, p64)(jnp.asarray(x))[1])
print("float32 features vs float64 (same weights), max relative error:",
      np.abs(got - ref).max() / np.abs(ref).max())
PY
} 2>&1 | tee "$OUT/env.txt"
start=$(date +%s)
timeout ${TABLE1_TIMEOUT:-420} python3 -m ntkdepth.cli run table1 --preset paper --out /tmp/table1-gpu 2>&1 \
    | tr '\r' '\n' | grep -v "width sweep" | tee "$OUT/table1_log.txt"
echo "table1 paper preset on GPU: $(( $(date +%s) - start )) s" | tee -a "$OUT/env.txt"
for f in summary.md table1.csv results.json config.json table1_scaling.png table1_steps.png; do
    cp /tmp/table1-gpu/$f "$OUT/" 2>/dev/null
done
