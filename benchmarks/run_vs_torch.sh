#!/usr/bin/env bash
# tfvae against the PyTorch reference VAE, one right after the other on this machine, with the
# same settings (batch 128, latent 40, hidden 512, dynamically binarised MNIST, Adam 1e-3).
#   bash benchmarks/run_vs_torch.sh [EPOCHS ...]     (default: 1 5)
# The reference needs torch: a separate venv is made at $TORCH_VENV (default .venv-torchref).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${TFVAE_SHARED:-../shared}
TORCH_VENV=${TORCH_VENV:-.venv-torchref}
if [ ! -x "$TORCH_VENV/bin/python" ]; then
  python3 -m venv "$TORCH_VENV"
  "$TORCH_VENV/bin/pip" install -q torch numpy
fi
for epochs in "${@:-1 5}"; do
  for e in $epochs; do
    "$TORCH_VENV/bin/python" "$SHARED/bench/ref_torch_vae.py" --data "$SHARED/data/mnist" --epochs "$e"
    python benchmarks/bench_vs_torch.py --data "$SHARED/data/mnist" --epochs "$e"
  done
done
