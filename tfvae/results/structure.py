"""Does a trained model's representation line up with the true factors of its data? The
structure metrics of `tfvae.metrics` for a run, where the data has factors:

| data | factors | metrics (``results.json`` / ``evaluation.json`` keys) |
| --- | --- | --- |
| ``data.source='dsprites'`` | shape, scale, orientation, x, y (`tfvae.data.dsprites`) | ``mig`` (disentanglement_lib's protocol: encoder means, 20 bins, shape included), ``mig_sampled`` (Chen et al.'s: q(z\\|x) samples, shape left out), ``dci_disentanglement``, ``dci_completeness``, ``dci_informativeness``, ``sap``, ``factor_vae_score`` |
| images with class labels, a mixture prior (``mog``, ``vamp``) | the class | ``cluster_accuracy``, ``nmi``: each image's component, argmax_c q(c \\| x) where c is a node (``model.label='cluster'``), else argmax_c p(c \\| z = E_q[z]), against its class |

dSprites' codes are of ``eval.structure_points`` images drawn uniformly from the whole factor
grid (the published protocol samples the whole set); DCI and SAP fit on 80% of them and score
on the rest; the FactorVAE score takes ``eval.factor_vae_votes`` training votes (half as many
to score) of 64 images each. ``structure_protocol`` in the output says what was used.
"""
import time
from typing import Dict

import numpy as np
import tensorflow as tf

from tfvae import data as data_lib
from tfvae.data import dsprites, images_of
from tfvae.distributions import posteriors
from tfvae.metrics import GroundTruth, clustering, dci, factor_vae, mig, sap


def _encode(model, images, batch: int = 500):
    """``(loc, scale)`` of q(z|x) ``[N, L]`` for images ``[N, H, W, C]``."""
    locs, scales = [], []
    for i in range(0, len(images), batch):
        loc, scale = posteriors.code_statistics(
            model.encode(tf.constant(images[i:i + batch]), training=False))
        locs.append(model.join(loc).numpy())
        scales.append(model.join(scale).numpy())
    return np.concatenate(locs), np.concatenate(scales)


def dsprites_metrics(model, num_points: int = 10000, votes: int = 800, seed: int = 0,
                     dci_predictor: str = "random_forest") -> Dict:
    """Every factor metric of ``model`` on dSprites (see the module)."""
    rng = np.random.default_rng(seed)
    classes = dsprites.classes_of(rng.integers(0, dsprites.NUM_IMAGES, num_points))
    loc, scale = _encode(model, dsprites.render_images(classes))
    cut = int(0.8 * num_points)
    out = {"mig": mig.mig(loc, classes),
           "mig_sampled": mig.mig_sampled(loc, scale, classes, dsprites.NUM_VALUES,
                                          exclude=(0,), seed=seed)}
    out |= dci.dci(loc[:cut], classes[:cut], loc[cut:], classes[cut:], dci_predictor, seed)
    out["sap"] = sap.sap(loc[:cut], classes[:cut], loc[cut:], classes[cut:])
    truth = GroundTruth(dsprites.NAMES, dsprites.NUM_VALUES, dsprites.render_images)
    out |= factor_vae.factor_vae_score(lambda x: _encode(model, x)[0], truth, seed=seed,
                                       num_train=votes, num_eval=max(votes // 2, 1),
                                       num_variance=num_points)
    out["structure_protocol"] = {
        "points": num_points, "dci_predictor": dci_predictor, "factor_vae_votes": votes,
        "mig": "disentanglement_lib: encoder means, 20 bins, all 5 factors",
        "mig_sampled": "Chen et al.: z ~ q(z|x), shape left out"}
    return out


def cluster_metrics(model, dataset) -> Dict:
    """``cluster_accuracy`` and ``nmi`` of the mixture prior's components against the classes
    of a data set of ``(images, labels)``; {} where the prior is not a mixture."""
    params = model.prior.mixture_parameters()
    if params is None or len(model.latent_dims) > 1:
        return {}
    logits, loc, scale = params
    per = posteriors.tfd.Independent(posteriors.tfd.Normal(loc, tf.broadcast_to(
        scale, tf.shape(loc))), 1)
    latent_c = getattr(model.label, "cluster_logits", None)  # q(c|x) where c is a node
    found, labels = [], []
    for batch in dataset:
        x = images_of(batch)
        if latent_c is not None:
            scores = latent_c(model, x, training=False)
        else:
            z = model.code(model.encode(x, training=False))
            scores = tf.nn.log_softmax(logits) + per.log_prob(z[:, None, :])
        found.append(tf.argmax(scores, -1).numpy())
        labels.append(np.asarray(batch[1]))
    c, y = np.concatenate(found), np.concatenate(labels)
    return {"cluster_accuracy": clustering.cluster_accuracy(c, y), "nmi": clustering.nmi(c, y),
            "clusters_used": int(len(np.unique(c)))}


def measure(model, config, split: str = "test", seed: int = 0) -> Dict:
    """The structure metrics the run's data allows (``{}`` where none), with the seconds they
    took (``structure_time_s``); clusters on ``split`` (read again with its labels)."""
    start = time.perf_counter()
    e = config.eval
    if config.data.source == "dsprites":
        out = dsprites_metrics(model, e.structure_points, e.factor_vae_votes, seed,
                               e.dci_predictor)
    elif (model.prior.mixture_parameters() is not None and not config.data.features
          and not model.networks_read_labels):  # z given y: its clusters are not the model's
        splits = data_lib.load(config.data, seed=config.seed, with_labels=True,
                               say=lambda m: None)
        if not splits.num_classes:
            return {}
        out = cluster_metrics(model, getattr(splits, split))
    else:
        return {}
    if out:
        out["structure_time_s"] = time.perf_counter() - start
    return out


def summary(result: Dict) -> str:
    """Lines for `evaluation.summary`."""
    names = ("mig", "mig_sampled", "dci_disentanglement", "dci_completeness",
             "dci_informativeness", "sap", "factor_vae_score", "cluster_accuracy", "nmi")
    return "\n".join(f"  {name:<28s} {result[name]:10.3f}" for name in names if name in result)
