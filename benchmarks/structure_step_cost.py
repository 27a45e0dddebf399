"""Training cost per step of each structure objective (`configs/structure.py`) relative to the
plain ELBO with the same networks, trained through `fit` as `tfvae-train` does, and the time of
each structure metric on 10,000 points. Run on an otherwise idle machine:

    python benchmarks/structure_step_cost.py --data=mnist      # MLP 784-500-500, batch 100
    python benchmarks/structure_step_cost.py --data=dsprites   # the conv networks, batch 64
    python benchmarks/structure_step_cost.py --metrics_only
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tfvae.cli import quiet_tensorflow  # noqa: E402
from step_timing import median_step_seconds  # noqa: E402

quiet_tensorflow()
import numpy as np  # noqa: E402
import tf_keras as keras  # noqa: E402
from absl import app, flags  # noqa: E402

from tfvae import data  # noqa: E402
from tfvae.config import from_file  # noqa: E402
from tfvae.models import builder  # noqa: E402
from tfvae.training import distribute, optimizers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
flags.DEFINE_enum("data", "mnist", ["mnist", "dsprites"], "DATA of configs/structure.py.")
flags.DEFINE_list("objectives", ["elbo", "beta_tcvae", "factor_vae", "dip_vae_i", "dip_vae_ii",
                                 "info_vae", "annealed_vae", "gmvae"], "OBJECTIVEs to time.")
flags.DEFINE_integer("steps", 200, "Timed steps per repeat (after a warm-up).")
flags.DEFINE_integer("repeats", 3, "Repeats; the median is reported.")
flags.DEFINE_bool("metrics_only", False, "Only time the metrics.")
flags.DEFINE_string("data_dir", os.path.join(HERE, "..", "..", "shared", "tfds"),
                    "TFDS folder holding mnist/.")
FLAGS = flags.FLAGS


def _config(objective):
    config = from_file(os.path.join(HERE, "..", "configs", "structure.py"),
                       f"{FLAGS.data},{objective}")
    config.data.data_dir, config.data.download = FLAGS.data_dir, False
    config.data.train_size = 6400
    config.data.validation_size = config.data.test_size = 1000 if FLAGS.data == "dsprites" \
        else config.data.validation_size
    return config


def step_time(objective):
    config = _config(objective)
    splits = data.load(config.data, seed=0)
    keras.utils.set_random_seed(0)
    vae = builder.build(config, splits.image_shape, splits.steps_per_epoch,
                        num_train=splits.num_train)
    default, groups = optimizers.for_training(config.train)
    jit = distribute.jit_compile(None, "auto", config.model.network.name)
    vae.compile(default, group_optimizers=groups, steps_per_execution=25, jit_compile=jit)
    return median_step_seconds(vae, splits.train.repeat(), FLAGS.steps, FLAGS.repeats, 50)


def metric_times(n=10000):
    from tfvae.data import dsprites
    from tfvae.metrics import GroundTruth, clustering, dci, factor_vae, mig, sap
    rng = np.random.default_rng(0)
    factors = dsprites.classes_of(rng.integers(0, dsprites.NUM_IMAGES, n))
    code = np.concatenate([factors / np.array(dsprites.NUM_VALUES), rng.normal(size=(n, 5))], 1)
    code = code + 0.05 * rng.normal(size=code.shape)
    cut = int(0.8 * n)
    jobs = {
        "mig (20 bins)": lambda: mig.mig(code, factors),
        "mig_sampled (10,000 samples)": lambda: mig.mig_sampled(
            code, np.full(code.shape, 0.1), factors, dsprites.NUM_VALUES, exclude=(0,)),
        "dci (random_forest)": lambda: dci.dci(code[:cut], factors[:cut], code[cut:],
                                               factors[cut:], "random_forest"),
        "dci (gbt, disentanglement_lib)": lambda: dci.dci(code[:cut], factors[:cut],
                                                          code[cut:], factors[cut:], "gbt"),
        "sap": lambda: sap.sap(code[:cut], factors[:cut], code[cut:], factors[cut:]),
        "factor_vae_score (800 votes, no encoder)": lambda: factor_vae.factor_vae_score(
            lambda x: x.reshape(len(x), -1)[:, ::400],
            GroundTruth(dsprites.NAMES, dsprites.NUM_VALUES, dsprites.render_images),
            num_train=800, num_eval=400, num_variance=n),
        "cluster_accuracy + nmi": lambda: (clustering.cluster_accuracy(factors[:, 3], factors[:, 3]),
                                           clustering.nmi(factors[:, 3], factors[:, 4])),
    }
    for name, job in jobs.items():
        start = time.perf_counter()
        job()
        print(f"{name:<44s} {time.perf_counter() - start:8.2f} s on {n} points", flush=True)


def main(argv):
    del argv
    if not FLAGS.metrics_only:
        base = None
        for objective in FLAGS.objectives:
            t = step_time(objective)
            base = base or t
            print(f"{FLAGS.data:<9s} {objective:<14s} {1000 * t:8.2f} ms/step  "
                  f"{t / base:5.2f}x the ELBO step", flush=True)
    metric_times()


if __name__ == "__main__":
    app.run(main)
