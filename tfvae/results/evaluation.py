"""Measuring a trained model on a data set, with one schema for ``results.json`` (the run's own
final evaluation) and ``evaluation.json`` (``tfvae-evaluate``).

Every mean comes with its standard error over images, ``{"mean": m, "se": s}``, in nats:

| key | what |
| --- | --- |
| ``num_examples`` | images measured |
| ``nodes`` | the model's latent nodes, one line each: family, parents, gradient (`tfvae.models.nodes`) |
| ``elbo``, ``distortion``, ``rate`` | ELBO = -(D + R) at beta = 1, one z ~ q(z|x) per image |
| ``elbo_bits_per_dim`` | -ELBO / (D ln 2), D = pixels x channels |
| ``active_units`` | latent dimensions with Cov_x(E_q[z_d]) > 0.01 [1] |
| ``given_labels`` | y observed (``model.label='observed'``): ELBO and ``log_likelihood`` are of log p(x \| y) |
| ``classification_error``, ``elbo_labelled`` | a model that can classify (``latent``, ``component``): its error rate on the split, and the bound with the true labels; for M2 its ``elbo`` is U(x) and ``log_likelihood`` sums y out exactly |
| ``rates``, ``active_units_per_layer`` | several latent layers only: each layer's rate R_l (they sum to R) and active units, bottom first |
| ``collapsed_dimensions`` | dimensions (of the top layer) whose KL to the prior's marginal is below 0.01 nats (standard normal and mixture priors; else null) |
| ``log_likelihood``, ``bits_per_dim``, ``iw_samples``, ``iw_examples`` | the importance-sampled bound with k samples on the first ``iw_examples`` images (`tfvae.inference.importance`) [1] |
| ``log_likelihood_exact`` | a discrete code of at most 65,536 values (`tfvae.inference.enumeration`): log p(x) = log sum_b p(x, b) exactly, on the same images (``codes``: how many values) |
| ``importance_weights`` | with ``diagnostics``: ESS / k and Pareto k-hat of the weights [2]; images above k-hat 0.7 listed as unreliable |
| ``mig``, ``dci_*``, ``sap``, ``factor_vae_score``, ``cluster_accuracy``, ``nmi`` | where the data has factors or classes (`tfvae.results.structure`; ``tfvae-evaluate`` and, at the top level, ``results.json``) |
| ``elbo_surgery`` | with ``diagnostics``: R = I_q(n; z) + KL(q(z) || p(z)) [3] (of the top layer's rate with several) |

References:
  [1] Burda, Grosse and Salakhutdinov (2016). Importance Weighted Autoencoders. ICLR.
  [2] Vehtari, Simpson, Gelman, Yao and Gabry (2024). Pareto Smoothed Importance Sampling. JMLR.
  [3] Hoffman and Johnson (2016). ELBO surgery: yet another way to carve up the variational
      evidence lower bound. NIPS Workshop on Advances in Approximate Bayesian Inference.
"""
import sys
from typing import Dict

import numpy as np
import tensorflow as tf

from tfvae.data import images_of
from tfvae.errors import ConfigError
from tfvae.inference import diagnostics, enumeration
from tfvae.models import nodes
from tfvae.progress import Progress
from tfvae.results import structure

EVALUATION = "evaluation.json"
SPLITS = ("test", "validation")


def value(entry) -> float:
    """The mean of a measured value: ``{"mean", "se"}``, or the bare float that results files
    written before tfvae 0.2 hold."""
    return float(entry["mean"]) if isinstance(entry, dict) else float(entry)


def evaluate(model, dataset, iw_samples: int = 0, iw_examples: int = 0,
             iw_batch_size: int = 100, seed: int = 0, with_diagnostics: bool = False,
             progress=sys.stderr) -> Dict:
    """Every measurement of the schema above for ``dataset`` (batches of images or of
    ``(images, labels)``); ``iw_samples`` = 0 skips the importance-sampled bound,
    ``iw_examples`` = 0 takes it on every image; ``with_diagnostics`` adds the importance
    weights' diagnostics and ELBO surgery (on every image). Seeded: the same ``seed`` gives the
    same numbers."""
    if iw_samples < 0 or iw_examples < 0 or iw_batch_size < 1:
        raise ConfigError(f"iw_samples={iw_samples}, iw_examples={iw_examples} must be >= 0 "
                          f"and iw_batch_size={iw_batch_size} >= 1")
    if model.networks_read_labels and not isinstance(dataset.element_spec, tuple):
        raise ConfigError("a model whose networks read the label is measured on (images, "
                          "labels) batches; this data set has images only "
                          "(data.load(..., with_labels=True))")
    keep_all = with_diagnostics or (iw_samples and not iw_examples)
    limit = max(iw_examples if iw_samples else 0, 1000)  # images kept for what follows
    found = _per_batch(model, dataset, seed, keep_all, limit)
    out = _summarise(model, found)
    images, labels = found["kept"], found["kept_labels"]
    to_bits = 1.0 / (np.prod(model.image_shape) * np.log(2.0))  # nats of -log p -> bits/dim
    out["collapsed_dimensions"] = diagnostics.collapsed_dimensions(
        model.given(None if labels is None else labels[:1000]), tf.constant(images[:1000]),
        seed=seed)
    if iw_samples:
        subset = images[:iw_examples] if iw_examples else images
        given = labels is not None and model.bound_given_labels
        out |= log_likelihood(model, subset, iw_samples, iw_batch_size, seed,
                              with_diagnostics and not model.enumerates_labels, progress,
                              labels=labels[:len(subset)] if given else None)
        if model.enumerates_labels and with_diagnostics:
            out["importance_weights"] = {"skipped": "y is summed out by enumeration: each "
                                                    "class has its own weights over z"}
        if given:
            out["given_labels"] = True  # y observed: the bound is on log p(x | y)
        out["bits_per_dim"] = _bits(out["log_likelihood"], to_bits)
    size = enumeration.support_size(model)
    if iw_samples and 0 < size <= enumeration.EXACT_MAX:  # a small discrete code: the truth
        subset = images[:iw_examples] if iw_examples else images
        out["log_likelihood_exact"] = exact_log_likelihood(model, subset, iw_batch_size)
    if with_diagnostics:
        out["elbo_surgery"] = _surgery(model, images, seed)
    return out


def _per_batch(model, dataset, seed, keep_all, limit) -> Dict:
    """Each batch's ELBO terms, layer rates, codes (and classification), and the first
    ``limit`` images (all with ``keep_all``) with their labels where the networks read them."""
    found = {key: [] for key in ("elbo", "distortion", "rate", "layer_rates", "codes", "kept",
                                 "kept_labels", "errors", "labelled")}
    n_kept = 0
    for i, batch in enumerate(dataset):
        x = images_of(batch)
        y = batch[1] if model.networks_read_labels else None
        t = _elbo_terms(model, x, tf.constant([seed, i]), y)
        if model.can_classify and isinstance(batch, (tuple, list)):
            # the classifier, and the bound with the true labels
            logits = model.classify(x, training=False)
            found["errors"].append(np.asarray(tf.argmax(logits, -1, output_type=tf.int32)
                                              != tf.cast(batch[1], tf.int32)))
            found["labelled"].append(model.labelled_terms(
                x, batch[1], seed=tf.constant([seed, i])).elbo.numpy())
        for key in ("elbo", "distortion", "rate"):
            found[key].append(getattr(t, key).numpy())
        found["layer_rates"].append(np.stack([r.numpy() for r in t.rates], -1))
        found["codes"].append(model.code(model.encode(x, training=False, labels=y)).numpy())
        if keep_all or n_kept < limit:
            found["kept"].append(x.numpy())
            if y is not None:
                found["kept_labels"].append(np.asarray(y))
            n_kept += len(found["kept"][-1])
    if not found["codes"]:
        raise ConfigError("nothing to evaluate: the data set is empty")
    found["kept"] = np.concatenate(found["kept"])
    found["kept_labels"] = (np.concatenate(found["kept_labels"]) if found["kept_labels"]
                            else None)
    return found


def _summarise(model, found) -> Dict:
    """The schema's means (with standard errors), counts and active units of `_per_batch`'s."""
    out = {key: diagnostics.mean_and_se(np.concatenate(found[key]))
           for key in ("elbo", "distortion", "rate")}
    out["nodes"] = [nodes.describe(node) for node in model.nodes]
    out["num_examples"] = int(sum(len(v) for v in found["elbo"]))
    to_bits = 1.0 / (np.prod(model.image_shape) * np.log(2.0))
    out["elbo_bits_per_dim"] = _bits(out["elbo"], to_bits)
    if found["errors"]:
        out["classification_error"] = diagnostics.mean_and_se(
            np.concatenate(found["errors"]).astype(np.float64))
        out["elbo_labelled"] = diagnostics.mean_and_se(np.concatenate(found["labelled"]))
    active = np.var(np.concatenate(found["codes"]), axis=0) > 0.01
    out["active_units"] = int(np.sum(active))
    if len(model.latent_dims) > 1:  # per layer, bottom first
        per_layer = np.concatenate(found["layer_rates"])
        out["rates"] = [diagnostics.mean_and_se(per_layer[:, l])
                        for l in range(per_layer.shape[1])]
        bounds = np.cumsum((0,) + tuple(model.latent_dims))
        out["active_units_per_layer"] = [int(np.sum(active[a:b]))
                                         for a, b in zip(bounds[:-1], bounds[1:])]
    return out


def _surgery(model, images, seed) -> Dict:
    if model.networks_read_labels:
        return {"skipped": "ELBO surgery splits the rate against p(z) over the data's "
                           "aggregate posterior; for a model of x given y it would be one per "
                           "class (not computed)"}
    try:
        return diagnostics.elbo_surgery(model, images, seed=seed)
    except ValueError as err:
        return {"skipped": str(err)}


def _bits(entry, to_bits):
    return {"mean": -entry["mean"] * to_bits, "se": entry["se"] * to_bits}


@tf.function(reduce_retracing=True)
def _elbo_terms(model, x, seed, labels=None):
    return model.elbo_terms(x, seed=seed, labels=labels)


def log_likelihood(model, images, k: int, batch_size: int = 100, seed: int = 0,
                   with_diagnostics: bool = False, progress=sys.stderr, labels=None) -> Dict:
    """The importance-sampled bound with ``k`` samples on ``images`` ``[N, H, W, C]`` (or on the
    images of a `tf.data` pipeline), ``batch_size`` images per call: ``log_likelihood`` (mean
    and standard error), ``iw_samples``, ``iw_examples``, and ``importance_weights`` with
    ``with_diagnostics``. Reports images/s and time left to ``progress`` (None: silent)."""
    if isinstance(images, tf.data.Dataset):
        batches = list(images)
        images = np.concatenate([images_of(b).numpy() for b in batches])
        if model.bound_given_labels:
            labels = np.concatenate([np.asarray(b[1]) for b in batches])
    bar = Progress(len(images), f"log p(x), k={k}", stream=progress)
    per_image = {}
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size]
        y = None if labels is None else tf.constant(labels[i:i + batch_size])
        if with_diagnostics:
            found = diagnostics.weight_diagnostics(model.log_weights(x, k, seed=(seed, i),
                                                                     labels=y))
        else:
            found = {"log_likelihood": model.log_likelihood(x, k, seed=(seed, i),
                                                            labels=y).numpy()}
        for key, v in found.items():
            per_image.setdefault(key, []).append(v)
        bar.update(len(x))
    bar.close()
    per_image = {key: np.concatenate(v) for key, v in per_image.items()}
    out = {"log_likelihood": diagnostics.mean_and_se(per_image["log_likelihood"]),
           "iw_samples": int(k), "iw_examples": int(len(images))}
    if with_diagnostics:
        out["importance_weights"] = diagnostics.summarize_weights(per_image)
        bad = np.flatnonzero(per_image["khat"] > diagnostics.KHAT_THRESHOLD)
        out["importance_weights"]["unreliable_indices"] = bad[:100].tolist()
    return out


def exact_log_likelihood(model, images, batch_size: int = 100) -> Dict:
    """log p(x) summed over every code of a small discrete model (`enumeration.log_marginal`),
    mean and standard error over ``images``."""
    fn = tf.function(lambda x: enumeration.log_marginal(model, x))
    values = np.concatenate([fn(tf.constant(images[i:i + batch_size])).numpy()
                             for i in range(0, len(images), batch_size)])
    return {**diagnostics.mean_and_se(values), "codes": enumeration.support_size(model),
            "examples": int(len(images))}


def summary(result: Dict, split: str = "") -> str:
    """A few lines for a person: every value with its standard error and the warnings."""
    def row(name, v, unit="nats"):
        return f"  {name:<28s} {v['mean']:10.3f} +- {v['se']:.3f} {unit}"
    split = result.get("split", split)
    head = f"{split + ' split, ' if split else ''}{result['num_examples']} images"
    if "weights" in result:
        head += f", weights: {result['weights']}"
    lines = [head] + ([f"  nodes: {'; '.join(result['nodes'])}"] if result.get("nodes") else [])
    lines += [row("ELBO", result["elbo"]), row("distortion D", result["distortion"]),
             row("rate R", result["rate"])]
    if "classification_error" in result:
        lines += [row("classification error", result["classification_error"], ""),
                  row("ELBO with the labels", result["elbo_labelled"])]
    for l, r in enumerate(result.get("rates", [])):
        lines.append(row(f"  rate of z{l + 1}", r))
    if "log_likelihood" in result:
        of = "log p(x|y)" if result.get("given_labels") else "log p(x)"
        lines += [row(f"{of} >= (k={result['iw_samples']}, n={result['iw_examples']})",
                      result["log_likelihood"]),
                  row("  in bits/dim", result["bits_per_dim"], "bits")]
    if "log_likelihood_exact" in result:
        exact = result["log_likelihood_exact"]
        lines.append(row(f"log p(x) exact ({exact['codes']} codes)", exact))
    w = result.get("importance_weights")
    if w and "skipped" not in w:
        lines += [f"  {'ESS / k':<28s} mean {w['ess_fraction_mean']:.3f}, 5th percentile "
                  f"{w['ess_fraction_p5']:.4f}",
                  f"  {'Pareto k-hat':<28s} median {w['khat_median']:.2f}, max "
                  f"{w['khat_max']:.2f}"]
        if w["unreliable_images"]:
            lines.append(
                f"  warning: {w['unreliable_images']} of {result['iw_examples']} images have "
                f"k-hat > {w['khat_threshold']}: their importance-sampled estimates are not "
                "reliable (the weights' variance may be infinite); raise k (--iw_samples) or use "
                "a better posterior (their indices: importance_weights.unreliable_indices)")
    s = result.get("elbo_surgery", {})
    if "marginal_kl" in s:
        lines += [row("I_q(n; z)", s["mutual_information"]),
                  row("KL(q(z) || p(z))", s["marginal_kl"])]
    collapsed = result.get("collapsed_dimensions")
    per_layer = result.get("active_units_per_layer")
    lines.append(f"  {'active units':<28s} {result['active_units']}"
                 + (f" (by layer, bottom first: {', '.join(map(str, per_layer))})"
                    if per_layer else "")
                 + (f" (collapsed dims, KL < 0.01: {collapsed})" if collapsed is not None else ""))
    return "\n".join(lines + structure.summary(result).splitlines())


# ---------------------------------------------------------------------- pieces for figures
def encode_dataset(model, dataset, max_examples: int = 0, sample: bool = False):
    """Posterior means, or one sample z ~ q(z|x) each (``sample=True``: draws from the aggregated
    posterior q(z)), ``[N, L]``; and labels ``[N]`` where the data set has them, else None."""
    codes, labels, n = [], [], 0
    for batch in dataset:
        q = model.encode(images_of(batch), training=False,
                         labels=batch[1] if model.networks_read_labels else None)
        codes.append((model.join(q.sample()) if sample else model.code(q)).numpy())
        if isinstance(batch, (tuple, list)):
            labels.append(np.asarray(batch[1]))
        n += len(codes[-1])
        if max_examples and n >= max_examples:
            break
    z = np.concatenate(codes)[: max_examples or None]
    y = np.concatenate(labels)[: max_examples or None] if labels else None
    return z, y


def posterior_means(model, dataset, max_examples: int = 0):
    """Posterior means ``[N, L]`` (and labels ``[N]`` where the data set has them)."""
    return encode_dataset(model, dataset, max_examples)
