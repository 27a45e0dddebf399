"""Structure without annotation: ``--config=configs/structure.py:DATA,OBJECTIVE``.

    tfvae-train --config=configs/structure.py:dsprites,beta_tcvae --workdir=runs/dsprites_tc
    tfvae-train --config=configs/structure.py:mnist,elbo --workdir=runs/mnist_mog \\
      --config.data.data_dir=../shared/tfds

DATA:

| data | model |
| --- | --- |
| ``dsprites`` | dSprites drawn from its factors (`tfvae.data.dsprites`), 64 x 64 binary; disentanglement_lib's networks (4 stride-2 4x4 convolutions of 32, 32, 64, 64, a dense layer of 256), 10 latents, standard-normal prior, Bernoulli pixels, batch 64, Adam 1e-4, 300,000 steps (26 epochs) |
| ``mnist`` | dynamically binarised MNIST, MLP 784-500-500, 10 latents, a 10-component mixture-of-Gaussians prior with learned weights (its components are the clusters), batch 100, Adam 1e-3, 200 epochs |

OBJECTIVE: ``elbo`` (no pressure), ``beta_vae`` (train.beta = 4), ``annealed_vae``,
``beta_tcvae``, ``factor_vae``, ``dip_vae_i``, ``dip_vae_ii``, ``info_vae``
(`tfvae.inference.penalties`, each at its paper's weight; ``--config.estimator.weight=...``
changes it), ``gmvae`` (the component c a latent node with q(c|x), summed out, and a usage term
that keeps every component alive: `tfvae.models.clusters`), ``broadcast`` (the spatial-broadcast decoder with the ELBO) and ``pose`` (the
rotation-and-translation decoder with the ELBO, `tfvae.models.geometric`). The run's
``results.json`` holds the structure metrics (`tfvae.results.structure`).
"""
import os

from tfvae.config import from_file
from tfvae.errors import ConfigError
from tfvae.inference import penalties

DATA = ("dsprites", "mnist")
OBJECTIVES = ("elbo", "beta_vae") + penalties.NAMES + ("gmvae", "broadcast", "pose")


def _dsprites(config):
    config.data.source = "dsprites"
    config.data.pixels = "binary"
    config.data.validation_size = 10000
    config.data.test_size = 10000
    config.data.batch_size = 64
    m = config.model
    m.network.name = "cnn"
    m.network.conv_channels = (32, 32, 64, 64)
    m.network.kernel_size = 4
    m.network.hidden = (256,)
    m.latent_dims = (10,)
    config.train.learning_rate = 1e-4
    config.train.epochs = 26          # 26 x 11,500 steps of 64 ~ 300,000 steps
    config.eval.iw_samples = 100
    config.eval.iw_examples = 1000


def _mnist(config):
    config.data.name = "mnist"
    config.data.pixels = "dynamic"
    config.data.batch_size = 100
    m = config.model
    m.network.hidden = (500, 500)
    m.latent_dims = (10,)
    m.prior.name = "mog"
    m.prior.components = 10
    m.prior.learn_weights = True
    config.train.learning_rate = 1e-3
    config.train.epochs = 200


def get_config(arg: str = "dsprites,beta_tcvae"):
    data, _, objective = arg.partition(",")
    if data not in DATA or objective not in OBJECTIVES:
        raise ConfigError(f"--config=configs/structure.py:{arg}: expected DATA,OBJECTIVE with "
                          f"DATA in {', '.join(DATA)} and OBJECTIVE in {', '.join(OBJECTIVES)}")
    config = from_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.py"))
    (_dsprites if data == "dsprites" else _mnist)(config)
    if objective == "beta_vae":
        config.train.beta = 4.0
    elif objective in penalties.NAMES:
        config.estimator.name = objective
        if objective == "factor_vae":  # Kim and Mnih: the discriminator's Adam at 1e-4
            config.train.groups.baseline.learning_rate = 1e-4
    elif objective == "gmvae":  # c a node with q(c|x); the usage term keeps components alive
        config.model.label = "cluster"
        config.model.prior.name = "mog"
        config.model.prior.components = 10
        config.model.cluster_usage_weight = 10.0  # 4 epochs of 12,000 images: all 10 in use
    elif objective == "broadcast":
        config.model.network.name = "broadcast"
        config.model.network.conv_channels = (64, 64, 64, 64)
    elif objective == "pose":
        config.model.network.name = "pose"
        config.model.network.hidden = (256, 256)
    return config
