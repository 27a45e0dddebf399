"""The command layer: ``tfvae-train``, ``tfvae-evaluate``, ``tfvae-sample``. Each command's
description, flags, parsing, one-line errors and exit codes are here, and nothing else is:
the work is done by `tfvae.training.train`, `tfvae.results.evaluation` and `tfvae.cli.sample`, which know nothing of
flags.

Exit codes: 0 done; 1 the run could not go on (data, checkpoint, workdir, divergence, a lost
worker), with one line saying why and what to do; 2 a wrong command line (flag, config field,
config file), with one line naming it and the fix. Nothing is written before the command line
and the config are accepted.

This module imports TensorFlow only after `quiet_tensorflow` has set up its logging, so that a
machine without a GPU prints no CUDA initialisation error at start-up.
"""
import difflib
import functools
import glob
import os
import re
import sys
import textwrap

USAGE_ERROR, RUN_ERROR = 2, 1
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
HELP_FLAGS = ("--help", "-h", "-?", "--helpshort")

TRAIN_HELP = """\
tfvae-train: train a VAE into a workdir, evaluate it on the test split, draw its figures and
export a SavedModel. Run the same command again after any interruption: it resumes where the run
stopped.

  tfvae-train --config=configs/default.py --workdir=runs/default [--config.FIELD=VALUE ...]
  tfvae-train --workdir=runs/default [--config.train.epochs=50]   # resume with the run's config

Flags:
  --config=FILE[:ARGS]     a config file (configs/*.py) returning an ml_collections.ConfigDict;
                           without it, a workdir that holds a run resumes with its own config,
                           and a new run uses tfvae/config.py
  --config.FIELD=VALUE     override one field, e.g. --config.model.latent_dims=40,40,
                           --config.train.epochs=5; every field and its meaning: tfvae/config.py
  --workdir=DIR            where the run is written (config.json, metrics.csv, checkpoints/,
                           backup/, results.json, figures, saved_model/)
  --helpfull               every flag, the config's fields and absl's own
"""

EVALUATE_HELP = """\
tfvae-evaluate: measure a run (finished or not) on its own, with standard errors and the
diagnostics that say whether to trust an importance-sampled number: ELBO, D, R, log p(x) with
k samples, ESS and Pareto k-hat of the weights, ELBO surgery, active units. Uses the run's best
checkpoint (else its training backup) and writes WORKDIR/evaluation.json (or --out=FILE.json;
never into a workdir a training holds).

  tfvae-evaluate --workdir=runs/default [--iw_samples=5000] [--split=validation] [--examples=1000]
"""

SAMPLE_HELP = """\
tfvae-sample: draw a labelled PNG from a SavedModel alone (only TensorFlow needed) or a workdir.
Modes: prior (z ~ p(z), at a temperature), conditional (z ~ q(z|x) for given images, then
x ~ p(x|z)), interpolate (between the codes of two images, linear and spherical).

  tfvae-sample --saved_model=runs/default/saved_model --out=samples.png [--seed=1]
  tfvae-sample --workdir=runs/default --mode=conditional --num=8 --oversample=6 --out=cond.png
"""


# ---------------------------------------------------------------------- start-up
def xla_cache() -> None:
    """Before TensorFlow is imported: keep XLA's compiled programs in a persistent cache, so a
    resumed or repeated run skips recompiling them (measured 0.7 s of a first training call of
    2.4 s on CPU). ``$TFVAE_XLA_CACHE`` names the folder ('' = off); the default is
    ``~/.cache/tfvae/xla-<TensorFlow version>`` (compiled programs belong to one version)."""
    from importlib import metadata
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if "tf_xla_persistent_cache_directory" in flags:
        return
    try:
        version = metadata.version("tensorflow")
    except metadata.PackageNotFoundError:
        version = "unknown"
    default = os.path.join(os.path.expanduser("~"), ".cache", "tfvae", f"xla-{version}")
    directory = os.environ.get("TFVAE_XLA_CACHE", default)
    if directory:
        os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={directory}".strip()


def quiet_tensorflow() -> None:
    """Before TensorFlow is imported: without an NVIDIA device, hide TensorFlow's C++ log below
    FATAL (its messages there are about the missing CUDA driver: "failed call to cuInit") and
    its start-up notes; with one, hide INFO and WARNING. A ``TF_CPP_MIN_LOG_LEVEL`` set by the
    user wins (and shows everything as before)."""
    xla_cache()
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    has_gpu = bool(glob.glob("/dev/nvidia[0-9]*")) or bool(glob.glob("/dev/dxg"))
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2" if has_gpu else "3"
    if not has_gpu:
        # TensorFlow's import logs "Could not find cuda drivers" (and oneDNN notes) to the
        # process's stderr before its log level applies; hold fd 2 for the import alone.
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
                import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            os.close(saved)
            raise
        os.dup2(saved, 2)
        os.close(saved)


# ---------------------------------------------------------------------- errors as one line
def _fail(prog, message, code=USAGE_ERROR):
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def _interruptible(prog, kept):
    """Wraps a command's ``main(argv)``: Ctrl-C (SIGINT) ends it with one line saying what is
    ``kept`` and exit status `INTERRUPTED`, not a traceback from wherever TensorFlow was."""
    def wrap(main):
        @functools.wraps(main)
        def run(argv=None):
            try:
                return main(argv)
            except KeyboardInterrupt:
                print(f"{prog}: interrupted; {kept}", file=sys.stderr, flush=True)
                raise SystemExit(INTERRUPTED) from None
            except Exception as err:  # noqa: BLE001 - only the interrupt's own, re-raised else
                if not _raised_by_interrupt(err):
                    raise
                print(f"{prog}: interrupted; {kept}", file=sys.stderr, flush=True)
                raise SystemExit(INTERRUPTED) from None
        return run
    return wrap


def _raised_by_interrupt(err: BaseException) -> bool:
    """Whether ``err`` was raised while a KeyboardInterrupt unwound: Ctrl-C inside one of
    TensorFlow's context managers (a device scope, say) can surface as the manager's own
    error ("Exiting device scope without proper scope nesting") with the interrupt as its
    context."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def _run_errors():
    from tfvae.errors import (CheckpointError, ConfigError, DataError,
                              DiskFullError, TrainingDivergedError,
                              WorkdirError)
    return (ConfigError, DataError, TrainingDivergedError, CheckpointError, WorkdirError,
            DiskFullError)


def _config_error(err: Exception, argv) -> str:
    """One line naming the bad flag and the fix, for an exception raised while parsing flags."""
    from tfvae.errors import ConfigError
    chain, e = [], err
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:
        if isinstance(e, ConfigError):
            # ml_collections re-raises a config file's error with its traceback as the message.
            inner = re.findall(r"ConfigError: (.*)", str(e))
            return inner[-1] if inner else str(e)
    text = "\n".join(str(e) for e in chain)
    config_arg = _config_file_arg(argv)
    if re.search(r"No such file or directory|Failed loading config file", text):
        path = (config_arg or "").split(":")[0]
        here = sorted(os.path.basename(p) for p in glob.glob(os.path.join(
            os.path.dirname(path) or "configs", "*.py")))
        return (f"--config={config_arg}: no such config file; give the path of a config file"
                + (f" (in {os.path.dirname(path) or 'configs'}/: {', '.join(here)})" if here else ""))
    # A misspelt field: --config.train.epoch=1 (ml_collections suggests the right name).
    for e in chain:
        match = re.search(r'Did you mean "(\w+)" instead of "(\w+)"', str(e))
        if match:
            right, wrong = match.groups()
            bad = next((a.split("=")[0] for a in argv if re.search(rf"\.{wrong}(\.|=|$)", a)),
                       f"--config...{wrong}")
            return f"{bad}: no field {wrong!r} in the config; did you mean {right}?"
    match = re.search(r"Unknown command line flag '([\w.]+)'", text)
    if match:
        name = match.group(1)
        if name.startswith("config."):
            return unknown_field(name[len("config."):])
        return f"--{name}: unknown flag; see --help for the flags"
    # A value given to a whole block: --config.model.prior=vamp.
    match = re.search(r"flag --config\.([\w.]+)=(\S*): Failed to parse .* as a ConfigDict", text)
    if match:
        return block_given_a_value(*match.groups())
    # A field that does not exist and resembles none: ml_collections raises KeyError('foo').
    for e in chain:
        if isinstance(e, KeyError):
            key = str(e.args[0]) if e.args else ""
            bad = next((a.split("=")[0] for a in argv if a.startswith("--config.")
                        and re.search(rf"\.{re.escape(key)}(\.|=|$)", a)), None)
            if bad:
                return unknown_field(bad[len("--config."):])
    flag = re.search(r"config(?:\.\w+)+", text)
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(err).__name__)
    return f"{flag.group(0) if flag else 'flags'}: {first}"


def unknown_field(path: str) -> str:
    """``model.foo`` -> one line: the field does not exist, the closest one if any, and the
    fields of the block it names (or the config's blocks)."""
    from tfvae.config import get_config, removed_flag
    config = get_config()
    parts = path.split(".")
    nested = {}
    for part in reversed(parts):
        nested = {part: nested or True}
    gone = removed_flag(nested)
    if gone:
        return f"--config.{path}: {gone}"
    node, where = config, []
    for part in parts[:-1]:
        if part not in node or not hasattr(node[part], "keys"):
            return (f"--config.{path}: no block {'.'.join(where + [part])!r} in the config; "
                    f"{_fields_of(node, where)}")
        node, where = node[part], where + [part]
    close = difflib.get_close_matches(parts[-1], list(node.keys()), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return (f"--config.{path}: no field {parts[-1]!r} in {'.'.join(where) or 'the config'}"
            f"{hint}; {_fields_of(node, where)}")


def block_given_a_value(path: str, value: str) -> str:
    """``model.prior``, ``vamp`` -> one line: that is a block; set one of its fields."""
    from tfvae.config import get_config
    node = get_config()
    for part in path.split("."):
        node = node[part]
    example = f" (e.g. --config.{path}.name={value})" if "name" in node else ""
    return (f"--config.{path}={value}: {path} is a block of fields, not a value; set one of "
            f"them{example}; {_fields_of(node, path.split('.'))}")


def _fields_of(node, where) -> str:
    name = ".".join(where) if where else "the config"
    return f"{name} has: {', '.join(sorted(node.keys()))}"


def _config_file_arg(argv):
    arg = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    if arg is None and "--config" in argv[:-1]:
        arg = argv[argv.index("--config") + 1]
    return arg


def _help(text, argv):
    if any(a in HELP_FLAGS for a in argv[1:]):
        try:
            print(text, flush=True)
        except BrokenPipeError:  # `--help | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0)


# ---------------------------------------------------------------------- tfvae-train
@_interruptible("tfvae-train", "the workdir keeps the run up to its last saved epoch: run the "
                               "same command again to resume from there")
def train_main(argv=None):
    """``tfvae-train``."""
    argv = list(sys.argv if argv is None else argv)
    _help(TRAIN_HELP, argv)
    quiet_tensorflow()
    from absl import app, flags, logging
    from ml_collections import config_flags

    from tfvae import config as config_lib
    prog = "tfvae-train"
    try:
        if "config" not in flags.FLAGS:
            # Loads --config (and its overrides) from argv already: their names come from it.
            config_flags.DEFINE_config_file(
                "config", os.path.join(os.path.dirname(config_lib.__file__), "config.py"),
                "A config file (configs/*.py) returning an ml_collections.ConfigDict.",
                lock_config=True, sys_argv=argv)
            flags.DEFINE_string("workdir", None, "Where the run is written.")
    except Exception as err:  # noqa: BLE001 - config files raise anything
        _fail(prog, _config_error(err, argv))

    def main(rest):
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)  # TF's INFO chatter (checkpoint sharding)
        if len(rest) > 1:
            _fail(prog, f"unexpected arguments: {' '.join(rest[1:])}")
        workdir = flags.FLAGS.workdir
        if not workdir:
            _fail(prog, "--workdir is required: the folder the run is written to (or resumed "
                        "from), e.g. --workdir=runs/default")
        try:
            config = _train_config(prog, flags.FLAGS.config, workdir, argv)
        except _run_errors() as err:
            _fail(prog, err, RUN_ERROR)
        _train(prog, config, workdir)

    app.run(main, argv=argv, flags_parser=_parser(prog, with_config=True))


def _train_config(prog, parsed, workdir, argv):
    """The config to train: the one given, or, with no --config, the workdir's own (resuming),
    with the ``--config.FIELD`` overrides of the command line on top."""
    from tfvae.training import runstate
    if _config_file_arg(argv) is not None:
        return parsed
    stored = os.path.join(workdir, runstate.CONFIG)
    if not os.path.exists(stored):
        return parsed  # a new run of the default config (tfvae/config.py)
    config = runstate.read_config(stored)
    for arg in argv[1:]:
        match = re.match(r"--config\.([\w.]+)", arg)
        if match:
            *path, last = match.group(1).split(".")
            src, dst = parsed, config
            for part in path:
                src, dst = src[part], dst[part]
            dst[last] = src[last]
    return config


def _train(prog, config, workdir):
    from tfvae.errors import WorkerLostError
    from tfvae.results import evaluation
    from tfvae.training import runstate, train
    try:
        results = train.train_and_evaluate(config, workdir)
    except WorkerLostError as err:
        # After an aborted collective TensorFlow's teardown can itself abort (seen: "double
        # free or corruption" while collecting garbage), which would replace exit status 1
        # with a signal: leave without it, everything the run keeps is already on disk.
        print(f"{prog}: error: {err}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(RUN_ERROR)
    except _run_errors() as err:
        _fail(prog, err, RUN_ERROR)
    if not results:  # a non-chief worker of a multi-worker run
        print("training finished; the chief worker evaluates and writes the results")
        return
    print(evaluation.summary({**results["test"], **{k: v for k, v in results.items()
                                                   if k not in ("test", "validation")}},
                             split="test"))
    print(f"results: {os.path.join(workdir, runstate.RESULTS)}")


# ---------------------------------------------------------------------- tfvae-evaluate
@_interruptible("tfvae-evaluate", "nothing was written (evaluation.json is written when the "
                                  "evaluation finishes) and the run is unchanged")
def evaluate_main(argv=None):
    """``tfvae-evaluate``."""
    argv = list(sys.argv if argv is None else argv)
    _help(EVALUATE_HELP + "\nFlags:\n" + _describe(_EVALUATE_FLAGS), argv)
    quiet_tensorflow()
    from absl import app, flags, logging
    prog = "tfvae-evaluate"
    _define(_EVALUATE_FLAGS)

    def main(rest):
        from tfvae.results import evaluation
        from tfvae.training import runs
        logging.set_verbosity(logging.WARNING)
        if len(rest) > 1:
            _fail(prog, f"unexpected arguments: {' '.join(rest[1:])}")
        f = flags.FLAGS
        try:
            path = runs.destination(f.workdir, f.out, say=lambda m: print(m, file=sys.stderr))
            result = runs.evaluate_run(f.workdir, f.split, f.iw_samples, f.examples,
                                       f.seed, f.batch_size, out=path)
        except _run_errors() as err:
            _fail(prog, err, RUN_ERROR)
        print(evaluation.summary(result))
        print(f"written: {path}" if path else "written: nothing (see the note above)")

    app.run(main, argv=argv, flags_parser=_parser(prog))


_EVALUATE_FLAGS = [
    ("string", "workdir", None, "workdir of a tfvae-train run (finished or not); required", {}),
    ("enum", "split", "test", "which split to evaluate: test or validation",
     {"enum_values": ["test", "validation"]}),
    ("integer", "iw_samples", 1000, "importance samples k per image (>= 1)", {"lower_bound": 1}),
    ("integer", "examples", 0, "images to evaluate (0: the whole split)", {"lower_bound": 0}),
    ("integer", "batch_size", 100, "images per importance-sampling call", {"lower_bound": 1}),
    ("integer", "seed", None, "seed of every random draw (default: a new one each call)", {}),
    ("string", "out", "", "the JSON to write (default: WORKDIR/evaluation.json, unless a "
     "training holds the workdir)", {}),
]


# ---------------------------------------------------------------------- tfvae-sample
@_interruptible("tfvae-sample", "nothing was written")
def sample_main(argv=None):
    """``tfvae-sample``."""
    argv = list(sys.argv if argv is None else argv)
    _help(SAMPLE_HELP + "\nFlags:\n" + _describe(_SAMPLE_FLAGS), argv)
    quiet_tensorflow()
    from absl import app, flags
    prog = "tfvae-sample"
    _define(_SAMPLE_FLAGS)

    def main(rest):
        from tfvae.cli import sample
        if len(rest) > 1:
            _fail(prog, f"unexpected arguments: {' '.join(rest[1:])}")
        f = flags.FLAGS
        try:
            indices = tuple(int(i) for i in f.indices)
            if len(indices) != 2:
                raise ValueError
        except ValueError:
            _fail(prog, f"--indices={','.join(f.indices)}: give two image indices, e.g. "
                        "--indices=0,5")
        try:
            sample.run(f.out, f.saved_model, f.workdir, f.mode, f.num, f.seed, f.temperature,
                       f.oversample, f.sampled_pixels, f.images, indices, f.steps,
                       say=lambda m: print(m, file=sys.stderr), labels=_labels(prog, f.labels))
        except _run_errors() + (OSError,) as err:
            _fail(prog, err, RUN_ERROR)
        print(f"written: {f.out}")

    app.run(main, argv=argv, flags_parser=_parser(prog))


_SAMPLE_FLAGS = [
    ("string", "saved_model", "", "a tfvae SavedModel folder", {}),
    ("string", "workdir", "", "or a tfvae-train workdir (finished or not)", {}),
    ("string", "out", "samples.png", "the PNG to write", {}),
    ("enum", "mode", "prior", "what to draw: prior, conditional or interpolate",
     {"enum_values": ["prior", "conditional", "interpolate"]}),
    ("integer", "num", 64, "prior draws, or images for 'conditional'", {}),
    ("integer", "seed", None, "seed of every draw (default: a new one)", {}),
    ("float", "temperature", 1.0, "prior temperature T (the prior's noise scale)", {}),
    ("integer", "oversample", 1, "pixel draws per z (prior), or draws per image", {}),
    ("bool", "sampled_pixels", False, "draw pixels x ~ p(x|z), not its mean", {}),
    ("string", "images", "", "a .npy of images [N, H, W, C] in [0, 1]", {}),
    ("list", "indices", ["0", "1"], "two image indices for 'interpolate'", {}),
    ("integer", "steps", 8, "points on each interpolation path", {}),
    ("list", "labels", [], "a conditional model's classes to draw, e.g. 3,3,7 (default: all)",
     {}),
]


def _labels(prog, values):
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        _fail(prog, f"--labels={','.join(values)}: give class numbers, e.g. --labels=0,3,7")


# ---------------------------------------------------------------------- flags
def _define(specs):
    from absl import flags
    for kind, name, default, text, extra in specs:
        if name in flags.FLAGS:
            continue
        if kind == "enum":
            flags.DEFINE_enum(name, default, extra["enum_values"], text)
        else:
            getattr(flags, f"DEFINE_{kind}")(name, default, text, **extra)


def _describe(specs) -> str:
    lines = []
    for _, name, default, text, extra in specs:
        shown = ",".join(default) if isinstance(default, list) else default
        lines.append(f"  --{name:<16s} {text}" + (f" (default: {shown})"
                                                   if shown not in (None, "") else ""))
    return "\n".join(textwrap.fill(line, 100, subsequent_indent=" " * 21) for line in lines)


def _parser(prog, with_config=False):
    """An absl ``flags_parser`` that turns every flag or config error into one line."""
    def parser(argv):
        from absl import flags
        try:
            rest = flags.FLAGS(argv)
            if with_config:
                flags.FLAGS.config.keys()  # a config file that failed to load raises here
            return rest
        except flags.Error as err:  # absl's own: wrong flag values, unknown flags
            if with_config:
                _fail(prog, _config_error(err, argv))
            _fail(prog, str(err).splitlines()[0])
        except Exception as err:  # noqa: BLE001 - config files raise anything
            _fail(prog, _config_error(err, argv))
    return parser
