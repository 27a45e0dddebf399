"""The base tfvae config (FashionMNIST, MLP, Bernoulli), the kinds of its fields, and the
upgrade of configs written by older tfvae versions.

``configs/*.py`` start from `get_config()` and change what they need; every field is overridable
on the command line (``--config.model.latent_dims=40,``). `tfvae.training.validation.validate`
checks a whole config and raises `ConfigError` naming the field and the fix.
"""
import math
from typing import Optional

import ml_collections



def get_config() -> ml_collections.ConfigDict:
    """FashionMNIST binarised at 0.5, MLP 512-512, latent 20, Bernoulli likelihood, Adam."""
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = _data_block()
    config.model = _model_block()

    # Gradient estimator (tfvae/inference/estimators.py): reparameterized, score_function, hybrid, iwae, dreg;
    # score-function control variates, a comma-separated chain applied in order, e.g.
    # "centered,scaled,baseline"; from: centered, scaled, self_critic, baseline.
    config.estimator = est = ml_collections.ConfigDict()
    est.name = "reparameterized"
    est.control_variates = ""
    # Discrete codes (tfvae/inference/discrete.py): reinforce, nvil, rloo, vimco, arm, disarm,
    # relax, gumbel, straight_through, enumerate. Relaxations' temperature tau_t =
    # max(temperature_min, temperature * exp(-anneal_rate * t)) at step t; relax starts its
    # learned temperature at `temperature`.
    est.temperature = 1.0
    est.temperature_min = 0.5
    est.anneal_rate = 0.0
    # The penalised objectives (tfvae/inference/penalties.py): annealed_vae, beta_tcvae,
    # factor_vae, dip_vae_i, dip_vae_ii, info_vae.
    est.weight = 0.0              # the penalty's weight (gamma, beta, lambda_od, lambda);
                                  # 0 = the paper's default
    est.weight_diagonal = 0.0     # DIP-VAE's lambda_d; 0 = 10 lambda_od (I) or lambda_od (II)
    est.capacity_max = 25.0       # annealed_vae: the capacity C reached, nats
    est.capacity_steps = 100000   # annealed_vae: steps over which C grows from 0
    est.tc_sampling = "mss"       # beta_tcvae: 'mss' (minibatch stratified) or 'mws' (weighted)
    est.info_alpha = 0.0          # info_vae: alpha (the rate's weight is 1 - alpha)
    est.discriminator_hidden = (1000,) * 6  # factor_vae: the discriminator's hidden widths

    config.train = train = ml_collections.ConfigDict()
    train.epochs = 30
    train.optimizer = "adam"      # adam, adam_normgrad, rmsprop, sgd, adamax (tfvae/training/optimizers.py)
    train.learning_rate = 1e-3
    # Per parameter group ('' / 0 = use train.optimizer / train.learning_rate): generative (decoder
    # and prior), inference (encoder), baseline (learned control variate).
    train.groups = ml_collections.ConfigDict({
        group: {"optimizer": "", "learning_rate": 0.0}
        for group in ("generative", "inference", "baseline")})
    train.beta = 1.0                # weight of the rate term
    train.kl_warmup_epochs = 0.0    # linear warm-up of beta from 0 over this many epochs
    train.early_stopping_patience = 0  # epochs without val ELBO gain before stopping; 0 = off
    train.steps_per_execution = 32    # train steps per tf.function call (less Python overhead)
    train.jit_compile = "auto"        # XLA-compile the train step: "auto" (where measured faster:
                                      # dense networks on CPU, every network on GPU), "true", "false"
    train.strategy = "auto"           # auto, default, mirrored, multi_worker, tpu (distribute.py)
    train.devices = ""                # mirrored: comma-separated devices ('' = all local GPUs)
    train.tpu = ""                    # tpu: the TPU resolver address ('' = local)
    # float32, mixed_float16 (networks in float16, dynamic loss scaling) or mixed_bfloat16:
    # the networks' compute dtype; distributions, log-probs and the loss stay float32.
    train.precision = "float32"       # or "auto": mixed_bfloat16 on a CPU with native bfloat16

    config.eval = ev = ml_collections.ConfigDict()
    ev.iw_samples = 1000          # k of the importance-sampled log-likelihood on the test set
    ev.iw_examples = 0            # test images for it; 0 = all
    ev.iw_batch_size = 100
    # Structure metrics (tfvae/results/structure.py), where the data has factors (dsprites) or
    # classes and the prior is a mixture:
    ev.structure_points = 10000   # dSprites images drawn from the factor grid for MIG, DCI, SAP
    ev.factor_vae_votes = 800     # FactorVAE score: training votes (64 images each; half to score)
    ev.dci_predictor = "random_forest"  # or 'gbt' (disentanglement_lib's, slow), 'lasso'
    ev.plots = True
    ev.grad_variance_repeats = 0  # >0: log the inference-gradient variance each epoch (repeats)
    ev.grad_variance_estimators = ""  # and other estimators' at the same parameters, e.g.
                                      # "reinforce,rloo,arm,disarm" (grad_variance_<name>)
    return config


def _data_block() -> ml_collections.ConfigDict:
    """``config.data``: where the images come from and how they are read."""
    data = ml_collections.ConfigDict()
    data.source = "tfds"          # 'tfds' (by name), 'idx' (official IDX files), 'folder', 'arrays'
    data.name = "fashion_mnist"   # TFDS name: 'fashion_mnist', 'mnist', ...
    data.data_dir = ""            # TFDS data_dir; '' = $TFDS_DATA_DIR or ~/tensorflow_datasets
    data.download = True          # let TFDS download and prepare the data set if missing
    data.idx_dir = ""             # for source='idx': folder of train-/t10k-images-idx3-ubyte[.gz]
    data.path = ""                # source='folder': a folder of PNG/JPEG images (one subfolder per
                                  # class optional; train/ validation/ test/ optional);
                                  # source='arrays': a .npz (images, labels, test_images, ...) / .npy
    data.channels = 0             # 0: as the images are; 1 (grey) or 3 (colour) converts
    data.bad_images = "fail"      # folder: an unreadable image stops the run ('fail') or is skipped
    data.in_memory_mb = 1024      # folder: decoded images up to this size are held in memory;
                                  # a larger folder streams from disk
    data.pixels = "binary"        # 'binary' (fixed threshold), 'dynamic', 'continuous'
    data.threshold = 0.5
    data.image_size = 0           # resize to image_size x image_size; 0 keeps the native size
    data.validation_size = 1000   # held out from train
    data.validation_split = "random"  # which: 'random' (seeded) or 'last' (the last N, as in
                                      # Tomczak and Welling's code: MNIST 50,000 / 10,000)
    data.test_size = 0            # held out from train only if the source has no test split
    data.train_size = 0           # use only this many training images; 0 = all
    data.labels = "all"           # training labels kept: 'all', 'none', or N per class (seeded;
                                  # the rest unlabelled, -1)
    data.features = ""            # a trained tfvae run's workdir: its q(z|x) codes of these
                                  # images are the data, [1, 1, d] (M1 features, Kingma et al.
                                  # 2014; needs model.likelihood.name='gaussian')
    data.features_sample = False  # features: training codes drawn z ~ q(z|x) afresh each time
                                  # (True: the authors' code, configs/semi_supervised.py's
                                  # M1+M2); evaluation takes the means E_q[z|x] either way
    data.features_min_sd = 0.0    # features: keep the dimensions whose mean E_q[z|x] varies
                                  # over 1,000 training images by a standard deviation above
                                  # this (the authors' 0.1 drops collapsed units); 0: all
    data.batch_size = 128
    data.eval_batch_size = 500

    return data


def _model_block() -> ml_collections.ConfigDict:
    """``config.model``: its nodes and parts, one nested block per part, each built by its
    registry from that block (``REGISTRY.create(block, ...)``: the block's ``name`` picks it)."""
    model = ml_collections.ConfigDict()
    model.latent_dims = (20,)       # latent sizes, bottom layer z1 (nearest x) to top zL; more
                                    # than one: a hierarchy (tfvae/models/hierarchy.py)
    model.label = "none"            # the label node y (tfvae/models/labels.py): 'none'; 'observed'
                                    # (a conditional VAE, q(z|x,y), p(x|z,y)); 'latent' (M2,
                                    # Kingma et al. 2014: observed where data.labels keeps it,
                                    # summed out elsewhere, a classifier q(y|x)); 'component'
                                    # (a mog / vamp prior's component c is p(z|y=c));
                                    # 'cluster' (no labels: c latent with q(c|x), p(z|c) the
                                    # mog prior's component, tfvae/models/clusters.py)
    model.cluster_usage_weight = 0.0  # cluster: w of w KL(mean_x q(c|x) || uniform), which
                                    # keeps every component in use
    model.classifier_weight = 0.1   # latent: alpha / N of the classification term
                                    # (its weight per image; the paper's alpha = 0.1 N)
    model.classifier_weight_per_labelled = False  # True: the weight is per labelled image, x
                                    # N_l in all (Pyro's aux_loss_multiplier / N; how tfvae
                                    # read classifier_weight before 2026-12-02: `upgrade`)
    model.labelled_bound_weight = "paper"  # latent: the labelled images' mean bound
                                    # weighs N_l / N ('paper': eq. 8 sums over the data set) or
                                    # as much as the unlabelled ones' ('equal', as the public
                                    # re-implementations of M2)
    model.label_estimator = "enumerate"  # latent, unlabelled images in training: y
                                    # 'enumerate'd, 'score_function' or 'gumbel_softmax'
                                    # (cluster: c 'enumerate'd or 'score_function')
    model.label_temperature = 0.5   # gumbel_softmax: the relaxation's temperature
    model.label_input = "channels"  # observed / latent: y (one-hot) enters q(z|x,y)
                                    # as K constant image channels, or joins the encoder's
                                    # features where it flattens x ('features': M2's way,
                                    # K x hidden weights instead of K x H x W x hidden)
    model.num_samples = 1           # latent samples per example in the training objective
    model.kl = "auto"               # 'auto', 'analytic', 'mc'

    model.network = net = ml_collections.ConfigDict()  # encoder and decoder (tfvae/models/networks.py)
    net.name = "mlp"                # 'mlp', 'cnn'; 'gated_mlp', 'gated_cnn' (Tomczak and Welling 2018);
                                    # 'broadcast', 'pose': a cnn encoder and a geometric decoder
                                    # (tfvae/models/geometric.py)
    net.hidden = (512, 512)         # dense widths (encoder order; the decoder mirrors them)
    net.conv_channels = (32, 64)    # cnn only: stride-2 conv channels
    net.kernel_size = 4             # cnn only
    net.activation = "relu"
    net.dropout = 0.0

    model.posterior = post = ml_collections.ConfigDict()  # q(z|x) (tfvae/distributions/posteriors.py)
    post.name = "gaussian"          # 'gaussian' (mean-field), 'mog' (mixture), 'iaf', 'realnvp';
                                    # discrete codes (tfvae/distributions/codes.py): 'bernoulli'
                                    # bits, 'categorical' one-hot groups (prior of the same name;
                                    # several latent_dims: a belief network, models/belief.py)
    post.classes = 2                # categorical: K classes per group (latent_dims / K groups)
    post.scale = "softplus"         # 'softplus', 'exp', 'hardtanh_logvar' (log-var in [-6, 2])
    post.components = 5             # mog: K components
    post.reparameterize = True      # mog: implicit reparameterisation
    post.flow_steps = 2             # iaf, realnvp: flow steps
    post.flow_hidden = (128, 128)   # iaf, realnvp: each step's network
    post.context = 32               # iaf, realnvp: encoder context h fed to each step

    model.prior = prior = ml_collections.ConfigDict()  # p(z) (tfvae/distributions/priors.py)
    prior.name = "standard_normal"  # standard_normal, mog, vamp, gtm, gtm_vamp, realnvp
    prior.components = 100          # K of mog / vamp (pseudo-inputs) / gtm, gtm_vamp (square)
    prior.init = "data"             # vamp pseudo-inputs: 'data' (training images) or 'noise'
    prior.pseudo_inputs = "sigmoid"  # vamp: u = sigmoid(v), or 'hardtanh': clip(v, 0, 1)
    prior.learn_weights = False     # vamp, gtm_vamp: learn the mixture weights
    prior.hidden = (64, 64)         # gtm / gtm_vamp networks, realnvp coupling networks
    prior.activation = "relu"       # their activation
    prior.flow_layers = 4           # realnvp: number of coupling layers

    model.likelihood = lik = ml_collections.ConfigDict()  # p(x|z) (tfvae/distributions/likelihoods.py)
    lik.name = "bernoulli"          # 'bernoulli' (binary pixels), 'continuous_bernoulli'; 8-bit
    # grey levels: 'discretized_logistic', 'discretized_logistic_mixture', 'categorical'
    lik.components = 5              # discretized_logistic_mixture: M logistics per pixel
    return model


def from_file(path: str, arg: str = None) -> ml_collections.ConfigDict:
    """The config of a config file (``configs/*.py``), as ``--config=PATH[:ARG]`` gives it:
    its ``get_config()``, or ``get_config(ARG)``."""
    import importlib.util
    import os
    name = "tfvae_config_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config() if arg is None else module.get_config(arg)


LABEL_INPUTS = ("features", "channels")


_KINDS = ((dict, "a block of fields"), (bool, "true or false"), (str, "a string"),
          ((int, float), "a number"), ((list, tuple), "a list"))


def kind_mismatch(values: dict, defaults: dict, where: str = "") -> Optional[str]:
    """The first field of ``values`` (plain data, nested) whose kind (block, flag, text, number,
    list) is not its default's, as "FIELD is VALUE, not KIND"; None when all agree. A field
    without a default, or a default of None, takes anything."""
    for key, value in values.items():
        default = defaults.get(key)
        if default is None or value is None and not isinstance(default, bool):
            continue
        for kind, name in _KINDS:
            if isinstance(default, kind):
                if not isinstance(value, kind) or (kind == (int, float)
                                                   and isinstance(value, bool)):
                    return f"{where}{key} is {value!r}, not {name}"
                break
        if isinstance(default, int) and not isinstance(default, bool):
            if not isinstance(value, int):
                return f"{where}{key} is {value!r}, not a whole number"
            if abs(value) >= 2 ** 31:
                return f"{where}{key}={value} is too large (at most {2 ** 31 - 1})"
        if isinstance(value, dict) and isinstance(default, dict):
            found = kind_mismatch(value, default, f"{where}{key}.")
            if found:
                return found
        if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)) and default:
            item = default[0]
            for v in value:
                if isinstance(item, (int, float)) and (not isinstance(v, (int, float))
                                                       or isinstance(v, bool)):
                    return f"{where}{key} holds {v!r}, not a number"
                if isinstance(item, int) and not isinstance(v, int):
                    return f"{where}{key} holds {v!r}, not a whole number"
                if isinstance(item, int) and abs(v) >= 2 ** 31:
                    return f"{where}{key} holds {v}, too large (at most {2 ** 31 - 1})"
    return None


def finite(tree: dict, where: str = "") -> Optional[str]:
    for key, value in tree.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, dict):
            found = finite(value, f"{where}{key}.")
            if found:
                return found
        elif any(isinstance(v, float) and not math.isfinite(v) for v in values):
            return f"{where}{key}={value!r} must be a finite number"
    return None


# Config files written by tfvae 0.1 (flat, prefixed fields) -> today's nested blocks: old field
# -> new path. Read by `upgrade` (`tfvae.training.runstate.read_config` applies it to every config.json).
RENAMED = {
    "model.network": "model.network.name", "model.hidden": "model.network.hidden",
    "model.conv_channels": "model.network.conv_channels",
    "model.kernel_size": "model.network.kernel_size",
    "model.activation": "model.network.activation", "model.dropout": "model.network.dropout",
    "model.posterior": "model.posterior.name", "model.posterior_scale": "model.posterior.scale",
    "model.posterior_components": "model.posterior.components",
    "model.posterior_reparameterize": "model.posterior.reparameterize",
    "model.posterior_flow_steps": "model.posterior.flow_steps",
    "model.posterior_flow_hidden": "model.posterior.flow_hidden",
    "model.posterior_context": "model.posterior.context",
    "model.prior": "model.prior.name", "model.prior_components": "model.prior.components",
    "model.prior_init": "model.prior.init", "model.prior_pseudo_inputs": "model.prior.pseudo_inputs",
    "model.prior_learn_weights": "model.prior.learn_weights",
    "model.prior_hidden": "model.prior.hidden", "model.flow_layers": "model.prior.flow_layers",
    "model.likelihood": "model.likelihood.name",
    "model.likelihood_components": "model.likelihood.components",
    "estimator": "estimator.name", "control_variates": "estimator.control_variates",
}
REMOVED = ("train.checkpoint_every_epoch",)  # fields that did nothing


# tfvae <= 0.3's flags for the label node -> ``model.label``, in the precedence its builder gave
# them (``semi_supervised`` over ``conditional`` over ``prior.annotated``).
LABEL_FLAGS = (("model.semi_supervised", "latent"), ("model.conditional", "observed"),
               ("model.prior.annotated", "component"))


def _label_from_flags(model: dict) -> None:
    """A stored config's label flags as the ``model.label`` its run had."""
    prior = model.get("prior") if isinstance(model.get("prior"), dict) else {}
    flags = {"model.semi_supervised": model.pop("semi_supervised", False),
             "model.conditional": model.pop("conditional", False),
             "model.prior.annotated": prior.pop("annotated", False)}
    if "label" not in model:
        model["label"] = next((role for flag, role in LABEL_FLAGS if flags[flag]), "none")


def removed_flag(values: dict):
    """The one line for a config that sets a label flag tfvae no longer has, else None."""
    model = values.get("model", {})
    for flag, role in LABEL_FLAGS:
        *path, leaf = flag.split(".")[1:]
        node = model
        for part in path:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and leaf in node:
            return (f"{flag} is no longer a field: the label node is one choice, "
                    f"model.label={role!r} (or 'none', 'observed', 'latent', 'component')")
    return None


def upgrade(stored: dict) -> dict:
    """A config as stored by any tfvae version (plain JSON data) in today's layout: tfvae 0.1's
    flat fields move into their part's block (`RENAMED`; its ``model.activation`` also became the
    prior networks' ``model.prior.activation``, which it used to set), dead fields are dropped,
    a flag that became a choice takes its word (``train.jit_compile`` True -> "true"), and a
    field whose meaning changed gets the value that keeps the old run's objective
    (``model.classifier_weight_per_labelled``). Today's layout is returned unchanged."""
    import copy
    out = copy.deepcopy(stored)
    model = out.get("model", {})
    if "latent_dim" in model:  # tfvae 0.1: one latent layer
        model["latent_dims"] = [model.pop("latent_dim")]
    _label_from_flags(model)
    if model.get("label") == "latent" and "classifier_weight_per_labelled" not in model:
        # M2 written before 2026-12-02, when its classification term was classifier_weight x
        # N_l x its mean over the labelled images: the same objective under today's reading.
        # (Other models do not read the field: they take its default, as a run started today.)
        model["classifier_weight_per_labelled"] = True
    train = out.get("train", {})
    if isinstance(train, dict) and isinstance(train.get("jit_compile"), bool):
        train["jit_compile"] = str(train["jit_compile"]).lower()  # tfvae 0.1: a flag
    if not isinstance(model.get("prior", {}), str) and not isinstance(out.get("estimator", {}),
                                                                          str):
        return out  # already nested
    flat = {}
    for old in RENAMED:
        section, _, key = old.rpartition(".")
        node = out if not section else out.get(section, {})
        if key in node and not isinstance(node[key], dict):
            flat[old] = node.pop(key)
    if "model.activation" in flat:
        flat.setdefault("model.prior.activation", flat["model.activation"])
    for old, new_path in list(RENAMED.items()) + [("model.prior.activation",
                                                   "model.prior.activation")]:
        if old not in flat:
            continue
        *parents, leaf = new_path.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = flat[old]
    for dead in REMOVED:
        section, _, key = dead.rpartition(".")
        out.get(section, {}).pop(key, None)
    return out
