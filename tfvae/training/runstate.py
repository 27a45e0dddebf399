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

from tfvae import storage
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
    with storage.atomic_file(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)


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


# What to do about each of a workdir's files that cannot be read.
REMEDIES = {
    CONFIG: "restore it from a copy, or start a new --workdir",
    STATE: "delete it: the run resumes from its training backup and writes it again",
    RESULTS: "delete it and run tfvae-train on the workdir again: it redoes the final "
             "evaluation from the trained weights and writes it again",
}
VERSION_KEY = "tfvae_version"  # in config.json: the tfvae that wrote it


def read_json(path: str):
    """A workdir's JSON file; raises `WorkdirError` naming it, what is wrong (empty, cut
    short, not JSON, unreadable) and the way out (`REMEDIES`)."""
    remedy = REMEDIES.get(os.path.basename(path), "restore it from a copy")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise WorkdirError(f"{path} cannot be read ({getattr(err, 'strerror', None) or err}); "
                           f"{remedy}") from None
    if not text.strip():
        raise WorkdirError(f"{path} is empty; {remedy}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise WorkdirError(f"{path} is not valid JSON ({err.msg}: line {err.lineno}, column "
                           f"{err.colno}; cut short or edited?); {remedy}") from None


def _version_tuple(text: str):
    return tuple(int(p) if p.isdigit() else 0 for p in str(text).split(".")[:3])


def _check_version(path: str, stored: dict) -> None:
    from tfvae import __version__
    written = stored.get(VERSION_KEY)
    if written is not None and _version_tuple(written) > _version_tuple(__version__):
        raise WorkdirError(f"{path} was written by tfvae {written}, newer than this tfvae "
                           f"{__version__}; upgrade tfvae (pip install -U) to use this workdir")


def read_config(path: str):
    """The ``config.json`` at ``path`` as a ConfigDict, on top of today's defaults: a config of
    an older tfvae is moved into today's layout first (`tfvae.config.upgrade`), and a field
    added since takes its default (the value the run effectively had). A file that cannot be
    read, of a newer tfvae, or with a field of the wrong kind raises `WorkdirError`."""
    import ml_collections

    from tfvae.config import get_config, kind_mismatch, upgrade
    stored = read_json(path)
    if not isinstance(stored, dict):
        raise WorkdirError(f"{path} holds {type(stored).__name__}, not a config; "
                           f"{REMEDIES[CONFIG]}")
    _check_version(path, stored)
    stored = {k: v for k, v in stored.items() if k != VERSION_KEY}
    try:
        stored = upgrade(stored)  # a config of an older tfvae in today's layout
    except (AttributeError, TypeError, KeyError, ValueError) as err:
        raise WorkdirError(f"{path} is not a tfvae config ({type(err).__name__}: {err}); "
                           f"{REMEDIES[CONFIG]}") from None
    wrong = kind_mismatch(stored, config_dict(get_config()))
    if wrong:
        raise WorkdirError(f"{path}: {wrong}; fix that field (tfvae/config.py says what it "
                           "holds), or start a new --workdir")
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
        from tfvae import __version__
        write_json(self.path(CONFIG), {VERSION_KEY: __version__, **config_dict(config)})

    def state(self) -> dict:
        if not os.path.exists(self.path(STATE)):
            return {"phase": "training"}
        state = read_json(self.path(STATE))
        if not isinstance(state, dict):
            raise WorkdirError(f"{self.path(STATE)} holds {type(state).__name__}, not the run's "
                               f"state; {REMEDIES[STATE]}")
        return state

    def write_state(self, state: dict) -> None:
        write_json(self.path(STATE), state)

    def results(self) -> Optional[dict]:
        """``results.json`` of a finished run; None while it is not finished."""
        if not os.path.exists(self.path(RESULTS)):
            return None
        return read_json(self.path(RESULTS))

    def update_state(self, **fields) -> dict:
        state = self.state() | fields
        self.write_state(state)
        return state

    # ------------------------------------------------------------------ history
    def metrics(self) -> List[dict]:
        """Rows of ``metrics.csv`` with numbers as floats (``epoch`` as int)."""
        if not os.path.exists(self.path(METRICS)):
            return []
        try:
            return self._metric_rows()
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise self._unreadable_metrics(err) from None

    def _unreadable_metrics(self, err) -> WorkdirError:
        return WorkdirError(
            f"{self.path(METRICS)} cannot be read ({err}); delete it (the run resumes from its "
            "backup; the history of the epochs before is lost), or restore it from a copy")

    def _metric_rows(self) -> List[dict]:
        with open(self.path(METRICS), newline="", encoding="utf-8") as f:
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
        try:
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.reader(f)
                header = next(reader, None)
                rows = [r for r in reader if r and r[0].isdigit() and int(r[0]) < epochs
                        and len(r) == len(header)]
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise self._unreadable_metrics(err) from None
        if header is None or not rows:
            os.remove(path)
            return
        with storage.atomic_file(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)

    def history(self, epochs: Optional[int] = None) -> Dict[str, list]:
        """``{metric: [value per epoch]}`` over the whole run (its first ``epochs`` epochs if
        given), as Keras's ``History``."""
        rows = [r for r in self.metrics() if epochs is None or r["epoch"] < epochs]
        keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
        return {k: [row.get(k, math.nan) for row in rows] for k in keys}


def _number(text: Optional[str]) -> float:
    return float(text) if text not in (None, "") else math.nan
