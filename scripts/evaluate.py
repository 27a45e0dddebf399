#!/usr/bin/env python3
"""Evaluate a finished or interrupted run; the same as the installed ``tfvae-evaluate``.

    python scripts/evaluate.py --workdir=runs/default --iw_samples=5000 --seed=1
"""
from tfvae.cli import evaluate_main

if __name__ == "__main__":
    evaluate_main()
