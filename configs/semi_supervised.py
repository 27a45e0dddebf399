"""Semi-supervised learning with the M2 model (Kingma, Rezende, Mohamed and Welling 2014):
``--config=configs/semi_supervised.py:DATASET,LABELS``, LABELS the training labels kept in all
(spread evenly over the classes, drawn with the run's seed), the other training images
unlabelled.

    tfvae-train --config=configs/semi_supervised.py:mnist,100 --workdir=runs/m2_mnist_100
    tfvae-train --config=configs/semi_supervised.py:mnist,100 --config.seed=1 --workdir=...

The paper's M2 setting: MNIST (the 60,000 training images less 10,000 for validation; the
paper uses 50,000 too), one hidden layer of 500 softplus units in every network, latent 50,
Adam with learning rate 3e-4 (the paper's first moment 0.9), batch 100 of all images beside a
batch of labelled ones, alpha = 0.1 N. Binarised dynamically (the paper models MNIST's grey
levels with a Bernoulli of their intensities, which is what dynamic binarisation samples).
Reported: test ``classification_error`` (and the bounds) in ``results.json``.
"""
from tfvae.config import get_config as base_config
from tfvae.errors import ConfigError

DATASETS = ("mnist", "fashion_mnist")


def get_config(arg: str = "mnist,100"):
    dataset, _, labels = arg.partition(",")
    if dataset not in DATASETS or not labels.isdigit() or int(labels) < 10 or int(labels) % 10:
        raise ConfigError(f"--config=configs/semi_supervised.py:{arg}: expected DATASET,LABELS "
                          f"with DATASET in {', '.join(DATASETS)} and LABELS a multiple of 10 "
                          "(the labels kept, spread over the 10 classes), e.g. mnist,100")
    config = base_config()
    d = config.data
    d.name, d.pixels = dataset, "dynamic"
    d.validation_size, d.validation_split = 10000, "last"
    d.batch_size, d.eval_batch_size = 100, 1000
    d.labels = str(int(labels) // 10)
    m = config.model
    m.semi_supervised, m.classifier_weight = True, 0.1
    m.network.name, m.network.hidden, m.network.activation = "mlp", (500,), "softplus"
    m.label_input = "features"  # the paper's MLPs read [x, y] (and enumeration costs 1/5)
    m.latent_dims = (50,)
    m.likelihood.name = "bernoulli"
    t = config.train
    t.optimizer, t.learning_rate = "adam", 3e-4
    t.epochs, t.early_stopping_patience = 1000, 50
    e = config.eval
    e.iw_samples, e.iw_examples, e.iw_batch_size = 100, 1000, 100
    return config
