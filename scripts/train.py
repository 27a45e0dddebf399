#!/usr/bin/env python3
"""Train a VAE from a config file; the same as the installed ``tfvae-train`` command.

    python scripts/train.py --config=configs/default.py --workdir=runs/default
    python scripts/train.py --config=configs/mnist_dynamic.py --config.train.epochs=10
"""
from tfvae.cli import train_main

if __name__ == "__main__":
    train_main()
