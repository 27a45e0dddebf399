"""tfvae: variational auto-encoders for images with TensorFlow Probability and Keras 2 (tf-keras)."""
import re

from setuptools import find_packages, setup

# One version, tfvae.__version__ (config.json records it: a workdir of a newer tfvae is refused).
VERSION = re.search(r'__version__ = "([^"]+)"', open("tfvae/__init__.py").read()).group(1)

setup(
    name="tfvae",
    version=VERSION,
    description="Variational inference in deep latent-variable models of images (TFP + tf-keras).",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfvae", "tfvae.*"]),
    python_requires=">=3.10",
    install_requires=[
        # TFP's layers need the Keras 2 API: tf-keras, versioned with TensorFlow.
        "tensorflow>=2.16,<2.22",
        "tf-keras>=2.16,<2.22",
        "tensorflow-probability>=0.24,<0.26",
        "tensorflow-datasets>=4.9",
        "importlib_resources",  # tensorflow-datasets imports it without declaring it
        "tensorboard",  # summaries written during training (no longer pulled in by TF 2.21)
        "absl-py",
        "ml-collections",
        "matplotlib",
        "pillow",  # reads and checks the images of a folder (data.source="folder")
        "numpy",
        # the structure metrics (tfvae.metrics): DCI's and SAP's classifiers, as
        # disentanglement_lib fits them, and the Hungarian matching of clusters to classes
        "scikit-learn>=1.3",
        "scipy",
    ],
    extras_require={
        # nbclient, nbformat, ipykernel: the tests run examples/tutorial.ipynb end to end;
        # pytest-xdist: the README's test command runs the files on two processes;
        # hypothesis: the generated battery of bad configs and broken workdirs (tests/test_faults.py).
        "test": ["pytest>=7", "pytest-xdist>=3", "nbclient", "nbformat", "ipykernel",
                 "hypothesis>=6"],
        # GPU users: pip install -e ".[gpu]" pulls the CUDA libraries TensorFlow needs.
        "gpu": ["tensorflow[and-cuda]>=2.16,<2.22"],
    },
    entry_points={"console_scripts": ["tfvae-train=tfvae.cli:train_main",
                                      "tfvae-evaluate=tfvae.cli:evaluate_main",
                                      "tfvae-sample=tfvae.cli:sample_main"]},
)
