#!/usr/bin/env python3
"""Trains a VAE into --workdir, or resumes the run there: the same as `tfvae-train`.

  python scripts/train.py --config=configs/mnist_dynamic.py --workdir=runs/default
  python scripts/train.py --workdir=runs/default --config.train.epochs=200   # resume, longer

--config (a configs/*.py file; --config.FIELD=VALUE overrides one field) and --workdir; --help
says more, --helpfull lists every flag.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout

from tfvae import cli  # noqa: E402

if __name__ == "__main__":
    cli.train_main(sys.argv)
