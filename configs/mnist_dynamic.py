"""Dynamically binarised MNIST with the literature's setting (e.g. Burda et al. 2016; Tomczak and
Welling 2018): latent 40, two hidden layers of 300, batch 100, lr 5e-4, KL warm-up over 100 epochs,
test log-likelihood with k = 5,000 importance samples.

    tfvae-train --config=configs/mnist_dynamic.py --workdir=runs/mnist
"""
from tfvae.config import get_config as base_config


def get_config():
    config = base_config()
    config.data.name = "mnist"
    config.data.pixels = "dynamic"
    config.data.batch_size = 100
    config.model.latent_dims = (40,)
    config.model.network.hidden = (300, 300)
    config.train.learning_rate = 5e-4
    config.train.epochs = 2000
    config.train.kl_warmup_epochs = 100.0
    config.train.early_stopping_patience = 50
    config.eval.iw_samples = 5000
    return config
