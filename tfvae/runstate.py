"""The state of a run in its workdir, kept true across kills and restarts.

- ``config.json``: the config the run uses. A restart compares the new config with it: fields in
  `SAFE_TO_CHANGE` (how long to train, how to evaluate, where the data lives) may change, and the
  change is recorded in ``run.json``; any other difference stops the run with the list of fields.
- ``metrics.csv``: one row per finished epoch, the run's history. On a restart rows of epochs the
  backup does not hold are dropped (`truncate_metrics`), so no epoch appears twice and a diverged
  epoch leaves no stale row; run statistics (epochs, training time, curves) are read from it.
- ``run.json``: the phase (``training``, then ``trained`` once ``fit`` has returned, with why it
  stopped) and the recorded config changes. A run killed after training resumes at its final
  phase (evaluation, figures, export) from the trained weights.
- ``results.json``: written last, atomically; its presence marks a finished run.
"""
import csv
import fnmatch
import json
import math
import os
import tempfile
from typing import Dict, List, Optional

from tfvae.errors import WorkdirError

CONFIG, METRICS, STATE, RESULTS = "config.json", "metrics.csv", "run.json", "results.json"

# Config fields a restarted run may change: they do not alter the state already trained (how
# long to train, how to evaluate, where the data lives, whether steps are XLA-compiled).
SAFE_TO_CHANGE = ("train.epochs", "train.early_stopping_patience", "eval.*", "data.data_dir",
                  "data.idx_dir", "data.download", "data.path", "data.in_memory_mb",
                  "train.jit_compile")


def write_json(path: str, obj) -> None:
    """Writes JSON atomically (a temporary file renamed over ``path``): a kill never leaves a
    half-written file."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _flatten(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= _flatten(value, name + ".")
        else:
            out[name] = value
    return out


def config_dict(config) -> dict:
    """A config as plain JSON data (tuples become lists), as stored in ``config.json``."""
    return json.loads(config.to_json_best_effort())


def _merge(base: dict, stored: dict) -> dict:
    out = dict(base)
    for key, value in stored.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(
            base.get(key), dict) else value
    return out


def read_config(path: str):
    """The ``config.json`` at ``path`` as a ConfigDict, on top of today's defaults: a config of
    an older tfvae is moved into today's layout first (`tfvae.config.upgrade`), and a field
    added since takes its default (the value the run effectively had)."""
    import ml_collections

    from tfvae.config import get_config
    from tfvae.config import upgrade
    with open(path) as f:
        stored = upgrade(json.load(f))  # a config of an older tfvae in today's layout
    merged = _merge(config_dict(get_config()), stored)
    config = ml_collections.ConfigDict(merged)
    defaults = get_config()

    def tuples(node, default):  # JSON made tuples lists; give them back their type
        for key in list(node.keys()):
            if isinstance(node[key], ml_collections.ConfigDict) and key in default:
                tuples(node[key], default[key])
            elif isinstance(node[key], list) and isinstance(default.get(key), tuple):
                node[key] = tuple(node[key])
    tuples(config, defaults)
    return config


class RunDir:
    """A workdir's files; creates nothing until `create`."""

    def __init__(self, workdir: str):
        self.workdir = workdir

    def path(self, name: str) -> str:
        return os.path.join(self.workdir, name)

    # ------------------------------------------------------------------ checks (write nothing)
    def check_usable(self) -> None:
        """Raises `WorkdirError` if the workdir holds a finished run or cannot be written."""
        if os.path.exists(self.path(RESULTS)):
            raise WorkdirError(
                f"--workdir={self.workdir} holds a finished run ({RESULTS}); training again "
                "would overwrite its checkpoints. Choose a new --workdir (or delete that one)")
        target = os.path.abspath(self.workdir)
        while not os.path.exists(target):  # the nearest existing folder must take new files
            target = os.path.dirname(target)
        if not os.path.isdir(target):
            raise WorkdirError(f"--workdir={self.workdir}: {target} is a file, not a folder; "
                               "choose another --workdir")
        try:
            with tempfile.TemporaryFile(dir=target):
                pass
        except OSError as err:
            raise WorkdirError(
                f"--workdir={self.workdir} is not writable ({target}: {err.strerror}); choose a "
                "folder you can write to, or fix its permissions") from None

    def config_changes(self, config) -> Dict[str, list]:
        """``{field: [old, new]}`` between the stored config and ``config`` (empty for a new
        run); raises `WorkdirError` listing the fields if any is not in `SAFE_TO_CHANGE`."""
        if not os.path.exists(self.path(CONFIG)):
            return {}
        old = _flatten(config_dict(read_config(self.path(CONFIG))))
        new = _flatten(config_dict(config))
        changes = {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new))
                   if old.get(k) != new.get(k)}
        unsafe = [k for k in changes
                  if not any(fnmatch.fnmatchcase(k, pattern) for pattern in SAFE_TO_CHANGE)]
        if unsafe:
            listed = ", ".join(f"{k}={changes[k][1]!r} (was {changes[k][0]!r})" for k in unsafe)
            raise WorkdirError(
                f"--workdir={self.workdir} holds a run started with another config: {listed}. "
                f"Resume with the original values (see {self.path(CONFIG)}) or choose a new "
                f"--workdir; only {', '.join(SAFE_TO_CHANGE)} may change on resume")
        return changes

    # ------------------------------------------------------------------ writing
    def create(self, config, changes: Dict[str, list], epoch: int) -> None:
        """Makes the workdir, writes ``config.json`` and records ``changes`` made at ``epoch``."""
        os.makedirs(self.workdir, exist_ok=True)
        if changes:
            state = self.state()
            state.setdefault("config_changes", []).append({"epoch": epoch, "changes": changes})
            self.write_state(state)
        write_json(self.path(CONFIG), config_dict(config))

    def state(self) -> dict:
        if not os.path.exists(self.path(STATE)):
            return {"phase": "training"}
        with open(self.path(STATE)) as f:
            return json.load(f)

    def write_state(self, state: dict) -> None:
        write_json(self.path(STATE), state)

    def results(self) -> Optional[dict]:
        """``results.json`` of a finished run; None while it is not finished."""
        if not os.path.exists(self.path(RESULTS)):
            return None
        with open(self.path(RESULTS)) as f:
            return json.load(f)

    def update_state(self, **fields) -> dict:
        state = self.state() | fields
        self.write_state(state)
        return state

    # ------------------------------------------------------------------ history
    def metrics(self) -> List[dict]:
        """Rows of ``metrics.csv`` with numbers as floats (``epoch`` as int)."""
        if not os.path.exists(self.path(METRICS)):
            return []
        with open(self.path(METRICS), newline="") as f:
            rows = []
            for row in csv.DictReader(f):
                if not row.get("epoch"):
                    continue  # a line cut short by a kill
                try:
                    rows.append({k: (int(v) if k == "epoch" else _number(v))
                                 for k, v in row.items() if k is not None})
                except ValueError:
                    continue
            return rows

    def truncate_metrics(self, epochs: int) -> None:
        """Keeps the rows of the first ``epochs`` epochs (the ones the backup holds)."""
        path = self.path(METRICS)
        if not os.path.exists(path):
            return
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = [r for r in reader if r and r[0].isdigit() and int(r[0]) < epochs
                    and len(r) == len(header)]
        if header is None or not rows:
            os.remove(path)
            return
        fd, tmp = tempfile.mkstemp(dir=self.workdir, prefix=".tmp-", suffix=".csv")
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)

    def history(self, epochs: Optional[int] = None) -> Dict[str, list]:
        """``{metric: [value per epoch]}`` over the whole run (its first ``epochs`` epochs if
        given), as Keras's ``History``."""
        rows = [r for r in self.metrics() if epochs is None or r["epoch"] < epochs]
        keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
        return {k: [row.get(k, math.nan) for row in rows] for k in keys}


def _number(text: Optional[str]) -> float:
    return float(text) if text not in (None, "") else math.nan
