#!/usr/bin/env python3
"""Draw from a trained model; the same as the installed ``tfvae-sample``.

    python scripts/sample.py --saved_model=runs/default/saved_model --out=samples.png --seed=1
"""
from tfvae.cli import sample_main

if __name__ == "__main__":
    sample_main()
