"""The whole config checked before any data is read or model built (``tfvae-train`` calls
`validate` first): every field of the kind its default has and finite, then each part's own
checks (its registry's name, its block's values). It lives above the parts it asks, so that
`tfvae.config` (the defaults and their upgrade) imports nothing of them."""
import json

from tfvae import config as config_lib
from tfvae import data, precision
from tfvae.distributions import likelihoods, posteriors, priors
from tfvae.errors import ConfigError
from tfvae.inference import estimators
from tfvae.models import labels, networks
from tfvae.training import distribute, optimizers


def validate(config) -> None:
    """Raises `ConfigError` for any value that cannot work, before data is read or a model built:
    first any field of another kind than its default (text for a number, ...) or not finite."""
    values = json.loads(config.to_json_best_effort())
    gone = config_lib.removed_flag(values)
    if gone:
        raise ConfigError(gone)
    defaults = json.loads(config_lib.get_config().to_json_best_effort())
    wrong = config_lib.kind_mismatch(values, defaults)
    wrong = wrong and f"{wrong} (see tfvae/config.py for what it holds)"
    wrong = wrong or config_lib.finite(values)
    if wrong:
        raise ConfigError(wrong)

    data.validate(config.data)
    networks.validate(config.model)
    posteriors.POSTERIORS.get(config.model.posterior.name)
    priors.PRIORS.get(config.model.prior.name)
    labels.LABELS.get(config.model.label)
    likelihoods.LIKELIHOODS.get(config.model.likelihood.name)
    estimators.ESTIMATORS.get(config.estimator.name)
    t, e = config.train, config.eval
    optimizers.OPTIMIZERS.get(t.optimizer)
    distribute.STRATEGIES.get(t.strategy)
    precision.PRECISIONS.get(t.precision)
    distribute.jit_setting(t.jit_compile)
    for group, settings in t.groups.items():
        if settings.optimizer and settings.optimizer not in optimizers.OPTIMIZERS:
            raise ConfigError(f"train.groups.{group}.optimizer={settings.optimizer!r}: unknown "
                              "optimizer; valid optimizers are: "
                              f"{', '.join(optimizers.OPTIMIZERS.names())}")
        if settings.learning_rate < 0:
            raise ConfigError(f"train.groups.{group}.learning_rate={settings.learning_rate} must "
                              "be > 0 (or 0 to use train.learning_rate)")
    estimators.build(config.estimator)  # unknown control variates, or ones it cannot use
    checks = [
        (t.epochs >= 1, f"train.epochs={t.epochs} must be >= 1"),
        (t.learning_rate > 0, f"train.learning_rate={t.learning_rate} must be > 0"),
        (t.beta >= 0, f"train.beta={t.beta} must be >= 0"),
        (t.kl_warmup_epochs >= 0, f"train.kl_warmup_epochs={t.kl_warmup_epochs} must be >= 0"),
        (t.steps_per_execution >= 1, f"train.steps_per_execution={t.steps_per_execution} must be >= 1"),
        (t.early_stopping_patience >= 0,
         f"train.early_stopping_patience={t.early_stopping_patience} must be >= 0 (0 = off)"),
        (config.model.num_samples >= 1, f"model.num_samples={config.model.num_samples} must be >= 1"),
        (config.model.label_input in config_lib.LABEL_INPUTS,
         f"model.label_input={config.model.label_input!r}; valid: {', '.join(config_lib.LABEL_INPUTS)}"),
        (e.iw_samples >= 1, f"eval.iw_samples={e.iw_samples} must be >= 1"),
        (e.iw_examples >= 0, f"eval.iw_examples={e.iw_examples} must be >= 0 (0 = all)"),
        (e.iw_batch_size >= 1, f"eval.iw_batch_size={e.iw_batch_size} must be >= 1"),
        (config.model.posterior.classes >= 2,
         f"model.posterior.classes={config.model.posterior.classes} must be >= 2 (a categorical "
         "code's classes per group)"),
        (config.estimator.temperature > 0 and config.estimator.temperature_min > 0,
         f"estimator.temperature={config.estimator.temperature} and temperature_min="
         f"{config.estimator.temperature_min} must be > 0"),
        (e.structure_points >= 100, f"eval.structure_points={e.structure_points} must be >= 100"),
        (e.factor_vae_votes >= 2, f"eval.factor_vae_votes={e.factor_vae_votes} must be >= 2"),
        (e.dci_predictor in ("random_forest", "gbt", "lasso"),
         f"eval.dci_predictor={e.dci_predictor!r}; use 'random_forest', 'gbt' or 'lasso'"),
        (config.estimator.tc_sampling in ("mss", "mws"),
         f"estimator.tc_sampling={config.estimator.tc_sampling!r}; use 'mss' or 'mws'"),
        (config.estimator.weight >= 0 and config.estimator.weight_diagonal >= 0,
         f"estimator.weight={config.estimator.weight} and weight_diagonal="
         f"{config.estimator.weight_diagonal} must be >= 0 (0: the paper's default)"),
        (config.estimator.anneal_rate >= 0,
         f"estimator.anneal_rate={config.estimator.anneal_rate} must be >= 0 (0: no annealing)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    for name in e.grad_variance_estimators.split(","):
        if name.strip() and name.strip() not in estimators.ESTIMATORS:
            raise ConfigError(f"eval.grad_variance_estimators: unknown estimator {name.strip()!r}; "
                              f"valid estimators are: {', '.join(estimators.ESTIMATORS.names())}")
