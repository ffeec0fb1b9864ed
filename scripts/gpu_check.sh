#!/usr/bin/env bash
# The prepared GPU check (issue 17): a venv with a CUDA build of JAX, sgjax from this
# checkout, the GPU tests, then scripts/gpu_check.py's benchmark; JSON and logs into
# $OUT (the device tool's folder) or ./gpu-check/. Within ~8 minutes on one H100/H200.
#
#   bash scripts/gpu_check.sh            # on the GPU machine, from the repository root
#
# JAX: where the machine's python3 already has a CUDA jaxlib (the lent machines' image has
# jax with the cuda13 plugin, and no network), the venv sees it (--system-site-packages);
# otherwise `pip install "jax[cuda12]"`. Missing pure-Python dependencies are installed from
# ./.whl when that folder holds wheels or sdists (carried: pip download omegaconf
# antlr4-python3-runtime==4.9.3 -d .whl), else from the index.
set -uo pipefail
OUT="${OUT:-$PWD/gpu-check}"
mkdir -p "$OUT"
log="$OUT/gpu-check.log"
exec > >(tee -a "$log") 2>&1
start=$(date +%s)
echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null)"

python3 -m venv --system-site-packages /tmp/sgjax-gpu-venv || exit 2
. /tmp/sgjax-gpu-venv/bin/activate
# SGJAX_GPU_CHECK_CPU=1: a dry run of this script on a CPU (the GPU tests skip, the rows
# run there); SGJAX_GPU_CHECK_ROWS=0,3: only those benchmark rows
pipx() {  # pip install from ./.whl if it is there, else from the index
  if [ -d .whl ] && ls .whl/* >/dev/null 2>&1; then
    pip install -q --no-index --find-links .whl --no-build-isolation "$@"
  else
    pip install -q "$@"
  fi
}
if python -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" 2>/dev/null; then
  echo "== the machine's CUDA jax"
elif [ -n "${SGJAX_GPU_CHECK_CPU:-}" ]; then
  python -c "import jax" 2>/dev/null || pipx jax
else
  echo "== no CUDA jax here: pip install jax[cuda12]"
  pip install -q "jax[cuda12]" || { echo "cannot install jax[cuda12]"; exit 2; }
fi
for mod in omegaconf optax orbax.checkpoint tqdm scipy pytest; do
  python -c "import $mod" 2>/dev/null || pipx "$(echo "$mod" | sed 's/orbax.checkpoint/orbax-checkpoint/')"
done
# sgjax from this checkout, by path: no build step (a venv's setuptools may not build it
# offline), the same modules and data files
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -c "import sgjax, omegaconf, optax" || exit 2
python - <<'EOF' | tee "$OUT/jax-devices.json"
import json, jax, jaxlib
print(json.dumps({"jax": jax.__version__, "jaxlib": jaxlib.__version__,
                  "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()]}))
EOF

echo "== GPU tests ($(( $(date +%s) - start )) s)"
timeout 150 python -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_pallas.py \
  tests/test_device_examples.py -x 2>&1 | tail -15 | tee "$OUT/gpu-tests.txt"

left=$(( 440 - ($(date +%s) - start) ))
echo "== benchmark (budget ${left} s)"
PYTHONUNBUFFERED=1 timeout $(( left + 60 )) python scripts/gpu_check.py \
  --out "$OUT/gpu-check.json" --budget-s "$(( left > 60 ? left - 60 : 0 ))" \
  ${SGJAX_GPU_CHECK_ROWS:+--rows "$SGJAX_GPU_CHECK_ROWS"}
echo "== done in $(( $(date +%s) - start )) s"
