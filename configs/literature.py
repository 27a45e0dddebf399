"""The VampPrior paper's protocol (Tomczak and Welling 2018; code ``jmtomczak/vae_vampprior``):
``--config=configs/literature.py:DATASET,PRIOR``.

    tfvae-train --config=configs/literature.py:mnist,vamp --workdir=runs/lit_mnist_vamp
    tfvae-train --config=configs/literature.py:fashion_mnist,standard --workdir=runs/lit_fm_std
    tfvae-train --config=configs/literature.py:mnist,hvae_vamp --workdir=runs/lit_mnist_hvae_vamp

DATASET: ``mnist`` or ``fashion_mnist``, dynamically binarised; the 60,000 training images split
50,000 / 10,000 with the last 10,000 as validation (as the authors' ``utils/load_data.py``), the
test images binarised once. PRIOR: ``standard``, ``vamp`` (K = 500 pseudo-inputs, hardtanh
parametrisation, initialised N(0.05, 0.01) as the authors' code) or ``mog`` (K = 500); with the
prefix ``hvae_`` (``hvae_standard``, ``hvae_vamp``, ``hvae_mog``) the paper's two-level HVAE
(``models/HVAE_2level.py``): z1 = z2 = 40, q(z2|x), q(z1|x, z2), p(z1|z2), p(x|z1, z2), gated
layers of 300 (`tfvae.models.hierarchy`), the prior on z2; with ``convhvae_`` the paper's convHVAE
(``models/convHVAE_2level.py``): the same graph with the authors' gated convolutional networks
(``model.network.name='gated_cnn'``).

Networks: two gated dense layers of 300 units in encoder and decoder, He initialisation, a
linear posterior mean and a log-variance clamped to [-6, 2]; latent 40; batch 100; Adam with
normalised gradients (the authors' AdamNormGrad), learning rate 5e-4; KL warm-up over 100 epochs;
up to 2,000 epochs, early stopping after 50 epochs without a better validation ELBO (the best
weights are kept); test log-likelihood by importance sampling with S = 5,000 on all 10,000 test
images. Where tfvae departs from the authors' code: docs/REPRODUCTION.md.
"""
from tfvae.config import get_config as base_config
from tfvae.errors import ConfigError

DATASETS = ("mnist", "fashion_mnist")
PRIORS = {  # config.model.prior of each
    "standard": {"name": "standard_normal"},
    "vamp": {"name": "vamp", "components": 500, "init": "noise", "pseudo_inputs": "hardtanh"},
    "mog": {"name": "mog", "components": 500},
}


def get_config(arg: str = "mnist,vamp"):
    dataset, _, model = arg.partition(",")
    levels, _, prior = model.rpartition("_")
    if levels not in ("", "hvae", "convhvae"):
        prior = ""
    if dataset not in DATASETS or prior not in PRIORS:
        raise ConfigError(f"--config=configs/literature.py:{arg}: expected DATASET,PRIOR with "
                          f"DATASET in {', '.join(DATASETS)} and PRIOR in {', '.join(PRIORS)}, "
                          "or hvae_PRIOR / convhvae_PRIOR for the two-level (conv)HVAE")
    config = base_config()
    d = config.data
    d.name, d.pixels = dataset, "dynamic"
    d.validation_size, d.validation_split = 10000, "last"
    d.batch_size, d.eval_batch_size = 100, 1000
    m = config.model
    m.network.name, m.network.hidden = "gated_mlp", (300, 300)
    m.latent_dims = (40, 40) if levels else (40,)
    if levels == "convhvae":
        m.network.name, m.network.hidden = "gated_cnn", (300,)
    m.posterior.name, m.posterior.scale = "gaussian", "hardtanh_logvar"
    m.likelihood.name = "bernoulli"
    m.prior.update(PRIORS[prior])
    t = config.train
    t.optimizer, t.learning_rate = "adam_normgrad", 5e-4
    t.epochs, t.kl_warmup_epochs, t.early_stopping_patience = 2000, 100.0, 50
    e = config.eval
    e.iw_samples, e.iw_examples, e.iw_batch_size = 5000, 0, 100
    return config
