"""How a model trains under Keras `fit`: its train and test steps, parameter groups, group
optimisers and metric trackers (`tfvae.models.model.VAE` is one of these). What a batch's loss is
belongs to the model's label role and estimator (``training_terms``); how each group's gradient
is taken and applied to `tfvae.inference.gradients`.
"""
import tensorflow as tf
import tf_keras as keras

from tfvae.errors import ConfigError
from tfvae.inference import estimators as estimators_lib
from tfvae.inference import gradients as gradients_lib


class TrainingSteps(keras.Model):
    """`train_step` / `test_step` over ``training_terms(data, beta)`` and ``test_terms(data)``,
    which a subclass gives, with the trackers ``self._trackers`` ({name: `keras.metrics.Mean`}),
    the step counter ``self.step`` and the warm-up (``beta``, ``kl_warmup_steps``) it sets."""

    @property
    def metrics(self):
        return list(self._trackers.values())

    def compile(self, optimizer="adam", group_optimizers=None, **kwargs):
        """Keras ``compile``, plus ``group_optimizers``: ``{group: optimizer}`` for any of the
        groups of `parameter_groups` that should not use ``optimizer`` (e.g. RMSprop with a small
        rate for the inference network under score-function training)."""
        super().compile(optimizer=optimizer, **kwargs)
        unknown = set(group_optimizers or {}) - set(estimators_lib.GROUPS)
        if unknown:
            raise ConfigError(f"unknown parameter groups {sorted(unknown)}; valid groups are: "
                              f"{', '.join(estimators_lib.GROUPS)}")
        self.group_optimizers = dict(group_optimizers or {})

    def parameter_groups(self):
        """Trainable variables by group: ``generative`` (decoder, prior), ``inference``
        (encoder, posterior head, a classifier q(y|x)), ``baseline`` (the estimator's control
        variates)."""
        generative, inference = self.latents.variables(self)
        return {"generative": generative, "inference": inference + self.label.variables(self),
                "baseline": self.estimator.trainable_variables}

    def optimizers(self):
        """``{group: optimizer}``: each group's own, or the default."""
        return {g: self.group_optimizers.get(g, self.optimizer) for g in estimators_lib.GROUPS}

    def current_beta(self):
        """beta, ramped linearly over ``kl_warmup_steps`` training steps."""
        if self.kl_warmup_steps <= 0:
            return tf.constant(self.beta)
        step = tf.cast(self.step + 1, tf.float32)
        return self.beta * tf.minimum(1.0, step / float(self.kl_warmup_steps))

    def _update(self, terms, beta):
        values = {"loss": terms.loss, "elbo": terms.elbo, "distortion": terms.distortion,
                  "rate": terms.rate, "beta": beta, **terms.extras}
        values.update(zip(self.rate_names(), terms.rates[:len(self.rate_names())]))
        for name, value in values.items():
            self._trackers[name].update_state(value)
        # Only what this step measured: an estimator's extras (e.g. ``iwae``) are training
        # quantities, so evaluation does not report them (it would report their reset value, 0).
        return {name: self._trackers[name].result() for name in values}

    # Plain Python tracing, no AutoGraph: nothing in a step branches or loops on a tensor, and
    # converting the ~60 functions a step calls took 1.7 s of a 3.3 s first-step trace (CPU).
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        beta = self.current_beta()
        groups, optimizers = self.parameter_groups(), self.optimizers()
        with tf.GradientTape(persistent=True) as tape:
            terms = self.training_terms(data, beta)
            if self.losses:  # layer regularisers join every group's loss
                reg = tf.add_n(self.losses)
                terms = terms._replace(loss=terms.loss + reg, group_losses={
                    g: loss + reg for g, loss in terms.group_losses.items()})
            passes = gradients_lib.backward_passes(gradients_lib.scale_for_replicas(terms),
                                                   groups, optimizers)
        per_group = gradients_lib.gradients(passes, tape, groups)
        del tape
        gradients_lib.apply(per_group, optimizers, default=self.optimizer)
        self.step.assign_add(1)
        return self._update(terms, beta)

    def training_terms(self, data, beta) -> estimators_lib.Terms:
        """The `Terms` a training batch gives (its label role's: the estimator's on images,
        on images with labels, or M2's objective)."""
        return self.label.training_terms(self, data, beta)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        return self._update(self.label.test_terms(self, data), tf.constant(1.0))
