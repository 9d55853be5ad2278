#!/usr/bin/env bash
# Every accelerator figure of the README in one call, for a lent GPU machine that has
# jax but no network (wheels of the few missing pure packages may be carried in .whl/).
#   bash experiments/device_bench.sh OUTDIR [SECTION ...]   (default: synth pc perceive train)
# SECTION is a `pcmusic bench --only` section, or pc-xla: the small PC net (pc --quick)
# with XLA's command buffers (CUDA graphs) off, to see what kernel launches cost. (Widening
# them instead, WHILE,CONDITIONAL and min graph size 1, had not compiled after 35 s on an
# H100 with jax 0.11.2, so it is not run.)
# SECTION_TIMEOUT_S_<section> caps a section (default 150 s). Each section's tables go
# to OUTDIR/<section>.txt and are printed again at the end.
set -u
out=${1:-/tmp/pcmusic_device_bench}; shift || true
sections=${*:-synth pc perceive train}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/pcmusic_site .whl/*.whl && export PYTHONPATH=/tmp/pcmusic_site
fi
export PYTHONPATH=.:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,temperature.gpu \
  --format=csv 2>&1 | tee "$out/gpu.txt"
for s in $sections; do
  start=$(date +%s)
  limit=$(t=SECTION_TIMEOUT_S_${s//-/_}; echo "${!t:-150}")
  if [ "$s" = pc-xla ]; then
    echo "XLA_FLAGS=--xla_gpu_enable_command_buffer=" > "$out/$s.txt"
    XLA_FLAGS=--xla_gpu_enable_command_buffer= timeout "$limit" \
      python3 -m pcmusic bench --quick --only pc >> "$out/$s.txt" 2>&1
  else
    timeout "$limit" python3 -m pcmusic bench --only "$s" > "$out/$s.txt" 2>&1
  fi
  echo "[exit $?]" >> "$out/$s.txt"
  echo "[section $s: $(( $(date +%s) - start )) s]" | tee -a "$out/$s.txt"
done
echo; echo "=================== tables ==================="
for s in $sections; do grep -v -E "^(WARNING|I0000|E0000|W0000)" "$out/$s.txt" | tail -n 45; done
