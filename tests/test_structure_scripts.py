"""scripts/experiments/structure_table.py and dsprites_mig.py: every row's config is one that
`tfvae-train` accepts (the labels rows once set an int into a string field and never ran)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK = """
import sys
sys.path.insert(0, {here!r})
sys.argv = ["x", "--workdir=/nonexistent"]
import {module} as m
from absl import flags
flags.FLAGS(sys.argv)
from tfvae.training import validation
rows = {rows}
for row in rows:
    c = m.config_of(row, 1)
    validation.validate(c)
    assert c.seed == 1
    print(row, c.data.labels, c.model.label, c.estimator.name)
"""


@pytest.mark.parametrize("module, rows", [
    ("structure_table", "m.FLAGS.rows"), ("dsprites_mig", "m.FLAGS.objectives")])
def test_every_row_is_a_valid_config(module, rows):
    here = os.path.join(REPO, "scripts", "experiments")
    out = subprocess.run([sys.executable, "-c", CHECK.format(here=here, module=module,
                                                             rows=rows)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    if module == "structure_table":
        assert "labels_1pc 50 component reparameterized" in lines
        assert "labels_10pc 500 component reparameterized" in lines
        assert len(lines) == 12
    else:
        assert [line.split()[0] for line in lines] == ["beta_vae", "beta_tcvae", "factor_vae"]
