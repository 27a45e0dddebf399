"""examples/tutorial.ipynb runs end to end (on small data), and is kept without outputs."""
import json
import os
import re

import pytest

from conftest import REPO, SHARED, _require

NOTEBOOK = os.path.join(REPO, "examples", "tutorial.ipynb")


def test_the_tutorial_is_stored_without_outputs():
    with open(NOTEBOOK) as f:
        notebook = json.load(f)
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)


@pytest.mark.slow
def test_the_tutorial_runs_and_says_what_it_claims(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    _require(os.path.join(SHARED, "tfds", "mnist"))
    monkeypatch.setenv("TFVAE_TUTORIAL_QUICK", "1")
    monkeypatch.setenv("TFVAE_SHARED", os.path.abspath(SHARED))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                     for o in c.outputs)
    variances = {}
    for line in text.splitlines():
        if "gradient variance" in line:
            name, cvs = line.split()[:2]
            variances[(name, cvs)] = float(line.split()[-1])
    # The comparison the tutorial makes: REINFORCE's variance is far above the path-wise one,
    # and control variates bring it down.
    assert variances[("score_function", "-")] > 10 * variances[("reparameterized", "-")]
    for cvs in ("centered", "self_critic"):
        assert variances[("score_function", cvs)] < variances[("score_function", "-")] / 3, cvs
    assert text.count("Pareto k-hat") == 2 and "log p(x) >= (k=500" in text
    # The discrete code: DisARM below ARM below REINFORCE, and the IS bound below the exact
    # log p(x) (it is a lower bound), the exact ELBO below both.
    assert variances[("discrete", "disarm")] < variances[("discrete", "arm")]
    assert variances[("discrete", "rloo")] < variances[("discrete", "reinforce")] / 10
    found = dict((m.group(1), float(m.group(2))) for m in re.finditer(
        r"^(ELBO \(exact\)|log p\(x\) >= IS|log p\(x\) exact)\s+(-?[0-9.]+)", text, re.M))
    assert found["ELBO (exact)"] <= found["log p(x) >= IS"] <= found["log p(x) exact"] + 0.05
    for name in ("data.png", "reconstructions.png", "mog_samples.png"):
        assert (tmp_path / name).stat().st_size > 0
