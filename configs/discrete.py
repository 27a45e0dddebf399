"""Discrete latent codes on dynamically binarised MNIST: ``--config=configs/discrete.py:SETTING,ESTIMATOR``.

    tfvae-train --config=configs/discrete.py:linear,disarm --workdir=runs/linear_disarm \\
      --config.data.data_dir=../shared/tfds

SETTING (the protocols of Yin and Zhou 2019 and Dong, Mnih and Tucker 2020, batch 50, Adam 1e-4,
1M steps = 1,000 epochs of 50,000 images; and of Jang, Gu and Poole 2017 for ``categorical``):

| setting | model |
| --- | --- |
| ``linear`` | 784-200: one layer of 200 bits, q(b|x) and p(x|b) affine |
| ``nonlinear`` | 784-200-200-200 (LeakyReLU) and mirrored, 200 bits |
| ``sbn2`` | 784-200-200: a sigmoid belief network of two layers of 200 bits, each affine |
| ``sbn3`` | 784-200-200-200: three layers |
| ``categorical`` | 20 groups of 10 classes, 784-512-256 (ReLU) and mirrored, batch 100, Adam 1e-3 |
| ``tiny`` | 8 bits, 784-64 (ReLU): small enough for ``enumerate`` and the exact log p(x) |

ESTIMATOR: reinforce, nvil, rloo, vimco, arm, disarm, relax, gumbel, straight_through,
enumerate (`tfvae.inference.discrete`); a combination that cannot work (arm or disarm on
categories, relax on a belief network, enumerate on 2^200 codes) is refused in one line.
"""
import os

from tfvae.config import from_file
from tfvae.errors import ConfigError
from tfvae.inference import discrete
from tfvae.inference.estimators import ESTIMATORS

SETTINGS = {
    "linear": dict(latent_dims=(200,), hidden=(), family="bernoulli"),
    "nonlinear": dict(latent_dims=(200,), hidden=(200, 200), family="bernoulli",
                      activation="leaky_relu"),
    "sbn2": dict(latent_dims=(200, 200), hidden=(), family="bernoulli"),
    "sbn3": dict(latent_dims=(200, 200, 200), hidden=(), family="bernoulli"),
    "categorical": dict(latent_dims=(200,), hidden=(512, 256), family="categorical",
                        classes=10, batch_size=100, learning_rate=1e-3),
    "tiny": dict(latent_dims=(8,), hidden=(64,), family="bernoulli"),
}
ESTIMATOR_NAMES = discrete.NAMES
# Samples per example: the multi-sample estimators compare at two evaluations of f, as ARM's
# antithetic pair does (the DisARM paper's protocol).
NUM_SAMPLES = {"rloo": 2, "vimco": 2}


def get_config(arg: str = "linear,disarm"):
    setting, _, estimator = arg.partition(",")
    if setting not in SETTINGS or estimator not in ESTIMATOR_NAMES:
        raise ConfigError(
            f"--config=configs/discrete.py:{arg}: expected SETTING,ESTIMATOR with SETTING in "
            f"{', '.join(SETTINGS)} and ESTIMATOR in {', '.join(ESTIMATOR_NAMES)}")
    ESTIMATORS.get(estimator)
    s = SETTINGS[setting]
    config = from_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.py"))
    config.data.name = "mnist"
    config.data.pixels = "dynamic"
    config.data.validation_size = 10000      # 50,000 training images, as the papers
    config.data.validation_split = "last"
    config.data.batch_size = s.get("batch_size", 50)
    m = config.model
    m.latent_dims = s["latent_dims"]
    m.network.hidden = s["hidden"]
    m.network.activation = s.get("activation", "relu")
    m.posterior.name = m.prior.name = s["family"]
    m.posterior.classes = s.get("classes", 2)
    m.num_samples = NUM_SAMPLES.get(estimator, 1)
    config.estimator.name = estimator
    if estimator == "nvil":  # the baseline network learns faster than the model
        config.train.groups.baseline.learning_rate = 10 * s.get("learning_rate", 1e-4)
    if estimator in ("gumbel", "straight_through"):  # Jang et al.: tau = max(0.5, e^{-rt})
        config.estimator.temperature, config.estimator.temperature_min = 1.0, 0.5
        config.estimator.anneal_rate = 1e-4
    if estimator == "relax":
        config.estimator.temperature = 0.5
    config.train.learning_rate = s.get("learning_rate", 1e-4)
    config.train.epochs = 1000 if setting != "categorical" else 200
    config.train.steps_per_execution = 50
    config.eval.iw_samples = 1000
    return config
