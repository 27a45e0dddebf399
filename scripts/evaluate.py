#!/usr/bin/env python3
"""Evaluates a workdir's best weights with every diagnostic: the same as `tfvae-evaluate`.

  python scripts/evaluate.py --workdir=runs/default --iw_samples=5000

--workdir (its config.json says the model and data); --help says more, --helpfull lists every
flag.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout

from tfvae import cli  # noqa: E402

if __name__ == "__main__":
    cli.evaluate_main(sys.argv)
