"""What a trained model gives: its measurements in one schema (`evaluation`), its figures
(`figures`, drawn by `plots`) and a SavedModel that samples without tfvae (`export`). Imports
the core, `tfvae.data`, `tfvae.distributions`, `tfvae.inference` and `tfvae.models`."""
