"""Any prior on MNIST or FashionMNIST: ``--config=configs/priors.py:DATASET,PRIOR``.

    tfvae-train --config=configs/priors.py:mnist,vamp --workdir=runs/mnist_vamp
    tfvae-train --config=configs/priors.py:fashion_mnist,realnvp --workdir=runs/fm_flow

DATASET: ``mnist`` (dynamically binarised, the literature's setting of configs/mnist_dynamic.py)
or ``fashion_mnist`` (the default config). PRIOR: standard_normal, mog, vamp, gtm, gtm_vamp,
realnvp. Prior settings are `tfvae.distributions.priors.RECOMMENDED` (K = 500 components or pseudo-inputs as
in Tomczak and Welling 2018; 20 x 20 GTM grids; a 6-layer flow).
"""
import os

from tfvae.config import from_file
from tfvae.errors import ConfigError
from tfvae.distributions.priors import RECOMMENDED as PRIOR_SETTINGS

DATASETS = ("mnist", "fashion_mnist")


def _load(name):
    return from_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), name))


def get_config(arg: str = "mnist,vamp"):
    dataset, _, prior = arg.partition(",")
    if dataset not in DATASETS or prior not in PRIOR_SETTINGS:
        raise ConfigError(f"--config=configs/priors.py:{arg}: expected DATASET,PRIOR with DATASET "
                          f"in {', '.join(DATASETS)} and PRIOR in {', '.join(PRIOR_SETTINGS)}")
    config = _load("mnist_dynamic.py" if dataset == "mnist" else "default.py")
    config.model.prior.name = prior
    config.model.prior.update(PRIOR_SETTINGS[prior])
    return config
