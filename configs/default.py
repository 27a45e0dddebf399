"""Default config: FashionMNIST (binarised at 0.5), MLP 512-512, latent 20, Bernoulli likelihood.

    tfvae-train --config=configs/default.py --workdir=runs/default
    tfvae-train --config=configs/default.py --config.model.latent_dims=40, --config.train.epochs=5

Every field and its meaning: `tfvae/config.py`.
"""
from tfvae.config import get_config  # noqa: F401  (the base config is the default)
