"""How a model is fitted and measured, as functions of its interface: the objectives and their
gradient estimators (`estimators`, chosen by name; `label_estimators` for a latent label), each
parameter group's gradient to its optimiser (`gradients`), the importance-weighted bound
(`importance`) and the diagnostics of weights and rates (`diagnostics`). Imports the core and
`tfvae.distributions`; never a model class. The discrete codes' estimators (`discrete`,
`relaxations`, `enumeration`) and the penalised objectives (`penalties`) register here, so every name is known once the folder is."""
from tfvae.inference import discrete, enumeration, penalties, relaxations  # noqa: F401  (registration)
