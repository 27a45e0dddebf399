"""tfvae: variational auto-encoders for images with TensorFlow Probability and tf-keras.

The package in folders, each importing only the ones before it in this list (docs/DESIGN.md,
"Folders"; `tests/test_layout.py` holds it):

| folder | what |
| --- | --- |
| (core) | `errors`, `registry`, `precision`, `storage`, `progress`, `config` (every field, its upgrade) |
| `data` | sources behind a registry (tfds, idx, folder, arrays), pixel modes, splits |
| `distributions` | priors, posteriors, likelihoods, flows |
| `inference` | estimators, label estimators, gradients, importance sampling, diagnostics |
| `models` | the one `VAE` of latent nodes, networks, hierarchy, its steps, the builder |
| `results` | evaluation, figures and plots, the SavedModel export |
| `training` | a run in a workdir: phases, callbacks, checkpoints, optimisers, strategies, locks |
| `cli` | the console commands (and `tfvae-sample`'s drawing) |

`config.get_config()` is the base config, `tfvae.models.builder.build` makes a model,
`tfvae.training.train.run` trains and evaluates one into a work directory. The flat names of
tfvae 0.3 (``from tfvae import priors``) still resolve, to the module's new place.
"""
import importlib

__version__ = "0.4.0"

# tfvae 0.3's flat module names -> their folder (``from tfvae import train`` keeps working).
MOVED = {
    **dict.fromkeys(("flows", "priors", "posteriors", "likelihoods"), "distributions"),
    **dict.fromkeys(("estimators", "label_estimators", "gradients", "importance",
                     "diagnostics"), "inference"),
    **dict.fromkeys(("networks", "hierarchy", "nodes", "labels", "steps", "model", "builder"),
                    "models"),
    **dict.fromkeys(("evaluation", "figures", "plots", "export"), "results"),
    **dict.fromkeys(("train", "callbacks", "checkpoints", "optimizers", "distribute",
                     "runstate", "runs", "locks", "validation"), "training"),
    "sample": "cli", "image_folders": "data",
}


def __getattr__(name):
    if name in MOVED:
        return importlib.import_module(f"tfvae.{MOVED[name]}.{name}")
    raise AttributeError(f"module 'tfvae' has no attribute {name!r}")
