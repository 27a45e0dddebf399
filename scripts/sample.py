#!/usr/bin/env python3
"""Draws images from a SavedModel or a workdir into a PNG: the same as `tfvae-sample`.

  python scripts/sample.py --workdir=runs/default --out=samples.png --seed=1

--workdir or --saved_model, --out; --help says more, --helpfull lists every flag.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout

from tfvae import cli  # noqa: E402

if __name__ == "__main__":
    cli.sample_main(sys.argv)
