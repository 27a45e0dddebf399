"""The distributions of a model, each a Keras layer that returns TFP distributions and is chosen
by name: priors p(z) (`priors.PRIORS`), posteriors q(z|x) (`posteriors.POSTERIORS`), likelihoods
p(x|z) (`likelihoods.LIKELIHOODS`) and the coupling networks their flows share (`flows`).
Imports only tfvae's core modules (errors, registry, precision)."""
