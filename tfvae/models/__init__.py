"""The model: one `model.VAE` over a graph of latent nodes (`nodes`: the latent structure; `labels`:
the label node's roles), its networks (`networks`, and `hierarchy` for several latent layers),
its Keras train and test steps (`steps`), and `builder`, which makes it from a config. Imports
the core, `tfvae.distributions` and `tfvae.inference`."""
from tfvae.models import geometric  # noqa: F401,E402  (registers the geometric decoders)
from tfvae.models import clusters  # noqa: F401,E402  (registers the 'cluster' label role)
