"""Gradient routing for a training step: each parameter group's gradient from its own loss,
applied by its own optimiser.

An estimator's `Terms` give one surrogate ``loss`` for every group, unless ``group_losses``
gives a group its own (DReG's inference gradient, say). Groups that share a loss and a loss
scale share one backward pass. Under ``mixed_float16`` each optimiser scales its groups' loss
(`tfvae.precision`), and gradients are unscaled before they are applied.

Used by `VAE.train_step`; a group with no variables (no baseline network, say) is skipped.
"""
from typing import Dict, List, Optional

import tensorflow as tf

from tfvae import precision as precision_lib


def backward_passes(terms, groups: Dict[str, list], optimizers: Dict[str, object]) -> List[tuple]:
    """``[(loss, scaler, group names)]``: one backward pass per distinct (loss, loss scale).
    ``groups``: ``{group: variables}``; ``optimizers``: ``{group: optimizer}``. Call it inside
    the tape: a scaled loss is computed here."""
    passes = {}
    for group, variables in groups.items():
        if not variables:
            continue
        optimizer = optimizers[group]
        scaler = optimizer if precision_lib.loss_scale(optimizer) is not None else None
        key = (group if group in terms.group_losses else "", id(scaler))
        passes.setdefault(key, (scaler, []))[1].append(group)
    out = []
    for (loss_name, _), (scaler, names) in passes.items():
        loss = terms.group_losses[loss_name] if loss_name else terms.loss
        out.append((scaler.get_scaled_loss(loss) if scaler else loss, scaler, names))
    return out


def gradients(passes, tape: tf.GradientTape, groups: Dict[str, list]) -> Dict[str, list]:
    """``{group: [(grad, variable), ...]}`` from `backward_passes`, unscaled."""
    out = {}
    for loss, scaler, names in passes:
        variables = [v for name in names for v in groups[name]]
        grads = tape.gradient(loss, variables)
        if scaler is not None:
            grads = scaler.get_unscaled_gradients(grads)
        i = 0
        for name in names:
            out[name] = list(zip(grads[i:i + len(groups[name])], groups[name]))
            i += len(groups[name])
    return out


def apply(per_group: Dict[str, list], optimizers: Dict[str, object],
          default: Optional[object] = None) -> None:
    """Applies each group's gradients with its optimiser; the groups whose optimiser is
    ``default`` in one call (one optimiser step, as Keras counts them)."""
    shared = [gv for group, gvs in per_group.items() if optimizers[group] is default for gv in gvs]
    if shared:
        default.apply_gradients(shared)
    for group, gvs in per_group.items():
        if optimizers[group] is not default and gvs:
            optimizers[group].apply_gradients(gvs)


def scale_for_replicas(terms):
    """Each replica's loss is a mean over its share of the global batch, and optimisers sum
    gradients over replicas: dividing by the replica count makes the applied gradient the
    global batch's mean gradient (1 replica: unchanged)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas == 1:
        return terms
    return terms._replace(loss=terms.loss / replicas, group_losses={
        g: loss / replicas for g, loss in terms.group_losses.items()})
