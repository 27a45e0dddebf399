"""Semi-supervised learning with the M2 model (Kingma, Rezende, Mohamed and Welling 2014):
``--config=configs/semi_supervised.py:DATASET,LABELS``, LABELS the training labels kept in all
(spread evenly over the classes, drawn with the run's seed), the other training images
unlabelled; ``DATASET,m1`` is the paper's M1 (a VAE trained on every image without labels), and
``DATASET,LABELS,m1=WORKDIR`` M1+M2: M2 on the posterior means of the M1 run in WORKDIR.

    tfvae-train --config=configs/semi_supervised.py:mnist,100 --workdir=runs/m2_mnist_100
    tfvae-train --config=configs/semi_supervised.py:mnist,100 --config.seed=1 --workdir=...
    tfvae-train --config=configs/semi_supervised.py:mnist,m1 --workdir=runs/m1_mnist
    tfvae-train --config=configs/semi_supervised.py:mnist,100,m1=runs/m1_mnist --workdir=...

The paper's M2 setting: MNIST (the 60,000 training images less 10,000 for validation; the
paper uses 50,000 too), one hidden layer of 500 softplus units in every network, latent 50,
Adam with learning rate 3e-4 (the paper's first moment 0.9), batch 100 of all images beside a
batch of labelled ones, alpha = 0.1 N. Binarised dynamically (the paper models MNIST's grey
levels with a Bernoulli of their intensities, which is what dynamic binarisation samples).
M1: two hidden layers of 600 softplus units, latent 50, Bernoulli p(x|z). M1+M2: M2 on M1's
features (`tfvae.training.runs.load_data`) as the authors' code makes them (dpkingma/nips14-ssl,
``run_2layer_ssl.py``, ``learn_yz_x_ss.py``): training codes drawn from q(z|x) afresh, the
dimensions whose means vary by a standard deviation above 0.1 kept, a Gaussian
p(features | y, z), and one hidden layer of 300 units with 100 labels (500 with more).
Reported: test ``classification_error`` (and the bounds) in ``results.json``. The paper's
weights leave M2 on pixels near 40% error; the public re-implementations weigh the labels
more (``--config.model.classifier_weight_per_labelled=True``,
``--config.model.labelled_bound_weight=equal``; docs/REPRODUCTION.md compares them).
"""
from tfvae.config import get_config as base_config
from tfvae.errors import ConfigError

DATASETS = ("mnist", "fashion_mnist")


def get_config(arg: str = "mnist,100"):
    dataset, _, rest = arg.partition(",")
    labels, _, m1 = rest.partition(",")
    valid_labels = labels.isdigit() and int(labels) >= 10 and int(labels) % 10 == 0
    if (dataset not in DATASETS or not (labels == "m1" or valid_labels)
            or (m1 and not (valid_labels and m1.startswith("m1=") and len(m1) > 3))):
        raise ConfigError(f"--config=configs/semi_supervised.py:{arg}: expected DATASET,LABELS "
                          f"with DATASET in {', '.join(DATASETS)} and LABELS a multiple of 10 "
                          "(the labels kept, spread over the 10 classes), e.g. mnist,100; "
                          "DATASET,m1 (M1); or DATASET,LABELS,m1=WORKDIR (M1+M2)")
    config = base_config()
    d = config.data
    d.name, d.pixels = dataset, "dynamic"
    d.validation_size, d.validation_split = 10000, "last"
    d.batch_size, d.eval_batch_size = 100, 1000
    m = config.model
    m.network.name, m.network.activation = "mlp", "softplus"
    m.latent_dims = (50,)
    m.likelihood.name = "bernoulli"
    t = config.train
    t.optimizer, t.learning_rate = "adam", 3e-4
    t.epochs, t.early_stopping_patience = 1000, 50
    e = config.eval
    e.iw_samples, e.iw_examples, e.iw_batch_size = 100, 1000, 100
    if labels == "m1":
        d.labels = "none"
        m.network.hidden = (600, 600)
        return config
    d.labels = str(int(labels) // 10)
    m.label, m.classifier_weight = "latent", 0.1
    m.network.hidden = (500,)
    m.label_input = "features"  # the paper's MLPs read [x, y] (and enumeration costs 1/5)
    if m1:
        d.features = m1[len("m1="):]
        d.features_sample, d.features_min_sd = True, 0.1
        m.likelihood.name = "gaussian"
        m.network.hidden = (300,) if int(labels) == 100 else (500,)
    return config
