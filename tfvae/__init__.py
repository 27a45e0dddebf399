"""tfvae: variational auto-encoders for images with TensorFlow Probability and tf-keras.

Parts are chosen by name (see the registries in `priors`, `posteriors`, `likelihoods`,
`estimators`, `networks`); `config.get_config()` is the base config, `builder.build` makes a model,
`train.run` trains and evaluates one into a work directory.
"""
__version__ = "0.4.0"
