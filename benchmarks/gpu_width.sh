#!/bin/bash
# The width-axis GPU run: Table 1's paper preset (centered, widths to 30,000,
# three seeds trained together per width) on the visible accelerators with full
# float32 matrix precision, plus a precision check of the model's matmuls.
# Estimated on one H200: about 8 minutes for Table 1 (TABLE1_TIMEOUT, default
# 540 s). TABLE2=1 also runs the paper preset of table2-networks (Table 2's finite
# networks; the kernel table itself is `table2`, which needs no GPU), whose networks (depth 10,
# widths to 8,192, up to 5,000 full-batch steps on 1,000 images, 5 subsets;
# about 1e17 flops) need about 45 minutes on one H200 at the rate of the Table 1
# run (TABLE2_TIMEOUT, default 3300 s); on several GPUs each width is split over
# them along its hidden dimension. For a machine with an NVIDIA GPU and the image's own Python
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
timeout ${TABLE1_TIMEOUT:-540} python3 -m ntkdepth.cli run table1 --preset paper --out /tmp/table1-gpu 2>&1 \
    | tr '\r' '\n' | grep -v "width sweep" | tee "$OUT/table1_log.txt"
echo "table1 paper preset on GPU: $(( $(date +%s) - start )) s" | tee -a "$OUT/env.txt"
for f in summary.md table1.md table1.csv results.json config.json table1_scaling.png table1_steps.png; do
    cp /tmp/table1-gpu/$f "$OUT/" 2>/dev/null
done
if [ "${TABLE2:-0}" = 1 ]; then
    start=$(date +%s)
    mkdir -p "$OUT/table2-networks"
    timeout ${TABLE2_TIMEOUT:-3300} python3 -m ntkdepth.cli run table2-networks --preset paper \
        --out /tmp/table2-networks-gpu 2>&1 \
        | tr '\r' '\n' | grep -v "width sweep" | tee "$OUT/table2-networks/table2_networks_log.txt"
    echo "table2-networks paper preset on GPU: $(( $(date +%s) - start )) s" | tee -a "$OUT/env.txt"
    for f in /tmp/table2-networks-gpu/*.md /tmp/table2-networks-gpu/*.csv /tmp/table2-networks-gpu/*.json \
             /tmp/table2-networks-gpu/*.png; do
        cp "$f" "$OUT/table2-networks/" 2>/dev/null
    done
fi
