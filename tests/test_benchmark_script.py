"""scripts/benchmark.py: it reads the images/s out of every twin's own line, and refuses an
unknown comparison in one line."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import benchmark  # noqa: E402


@pytest.mark.parametrize("line, rate", [
    ("torch_ref epochs=3 batch=128 latent=40 hidden=512 train_img_per_s=10429 test_elbo=-111.01 "
     "test_iwae100=-106.41", 10429),
    ("tfvae epochs=3 batch=128 latent=40 hidden=512 train_img_per_s=14134 test_elbo=-108.58 "
     "test_iwae100=-103.23 (steady_img_per_s=15511 first_epoch_s=4.9 jit=False)", 14134),
    ("torch_ref_iw k=1000 batch=20 hidden=512 latent=40 images_per_s=48.3 threads=2", 48.3),
    ("reference network, 20 images per call, k=1000: 121.9 images/s; all 10000 test images: "
     "1.4 min", 121.9),
    ("torch 2.14.1 conv twin size=64 threads=2 train_img_per_s=160 first_epoch_img_per_s=150 "
     "final_loss=1.0", 160),
    ('{"setting": "auto", "size": 64, "jit": false, "first_epoch_s": 9.1, '
     '"train_img_per_s": 464.2, "final_loss": 1.0}', 464.2),
    ("torch_discrete estimator=disarm epochs=1 batch=50 train_img_per_s=5123 test_elbo=-1", 5123),
])
def test_reads_every_twins_rate(line, rate):
    assert benchmark.rate_of("noise\n" + line + "\n") == pytest.approx(rate)
    with pytest.raises(ValueError):
        benchmark.rate_of("no figure here")


def test_every_comparison_names_scripts_that_exist():
    for torch_cmd, sides, _ in benchmark.comparisons().values():
        for command in [torch_cmd, *sides.values()]:
            assert os.path.exists(command[0]) or "shared" in command[0], command[0]


def test_unknown_comparison_is_one_line():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "benchmark.py"),
                          "--only=gpu"], capture_output=True, text=True)
    assert out.returncode != 0
    assert out.stderr.strip() == ("error: --only=gpu unknown; choose from mlp1, mlp3, iw, conv, "
                                  "disarm, vimco")
