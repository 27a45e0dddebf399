"""Shared fixtures: real data from ../shared (MNIST via TFDS, the FashionMNIST IDX sample)."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("TFVAE_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
TFDS_DIR = os.path.join(SHARED, "tfds")
FASHION_IDX = os.path.join(SHARED, "data", "fashion_mnist_sample")


def _require(path):
    if not os.path.exists(path):
        message = f"real data not found at {path} (set TFVAE_SHARED to the shared/ folder)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI always has ../shared: a missing folder is an error there
        pytest.skip(message)
    return path


def make_config(**overrides):
    """The base config pointed at MNIST in ../shared, small and fast; ``a__b=v`` sets a.b."""
    from tfvae.config import get_config
    config = get_config()
    config.data.name = "mnist"
    config.data.data_dir = TFDS_DIR
    config.data.download = False
    config.data.pixels = "dynamic"
    config.model.latent_dims = (10,)
    config.model.network.hidden = (256, 256)
    config.train.epochs = 1
    config.eval.iw_samples = 50
    config.eval.iw_examples = 200
    for key, value in overrides.items():
        node = config
        *path, last = key.split("__")
        for part in path:
            node = node[part]
        node[last] = value
    return config


@pytest.fixture(scope="session")
def mnist_arrays():
    """``{'train': (x, y), 'test': (x, y)}`` uint8 arrays of the full TFDS MNIST."""
    from tfvae import data
    _require(os.path.join(TFDS_DIR, "mnist"))
    return data.load_tfds("mnist", TFDS_DIR, download=False)


@pytest.fixture(scope="session")
def fashion_idx_dir():
    return _require(FASHION_IDX)


@pytest.fixture(scope="session")
def trained(mnist_arrays):
    """A small MLP VAE trained 2 epochs on 12,000 dynamically binarised MNIST images."""
    import tf_keras as keras
    from tfvae import data
    from tfvae.models import builder
    config = make_config(data__train_size=12000)
    keras.utils.set_random_seed(0)
    splits = data.load(config.data, seed=0, arrays=mnist_arrays)
    vae = builder.build(config, splits.image_shape, splits.steps_per_epoch)
    vae.compile(keras.optimizers.Adam(1e-3), steps_per_execution=16)
    before = vae.evaluate(splits.validation, verbose=0, return_dict=True)
    vae.fit(splits.train, epochs=2, verbose=0)
    after = vae.evaluate(splits.validation, verbose=0, return_dict=True)
    return {"model": vae, "splits": splits, "before": before, "after": after, "config": config}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, fashion_idx_dir):
    """A finished 2-epoch tfvae-train workdir on the FashionMNIST sample (latent 10)."""
    from tfvae.training import train
    workdir = str(tmp_path_factory.mktemp("tiny") / "run")
    config = make_config(data__source="idx", data__idx_dir=fashion_idx_dir, data__test_size=300,
                         data__validation_size=300, data__train_size=512,
                         data__pixels="binary", train__epochs=2, eval__iw_samples=10,
                         eval__iw_examples=50, eval__plots=False)
    train.train_and_evaluate(config, workdir, verbose=0)
    return workdir
