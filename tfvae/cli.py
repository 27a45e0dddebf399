"""Command-line entry points (``tfvae-train``): flags, and errors as one line, not a traceback.

This module imports TensorFlow only after `quiet_tensorflow` has set up its logging, so that a
machine without a GPU prints no CUDA initialisation error at start-up.
"""
import difflib
import glob
import os
import re
import sys


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
    config_arg = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    if config_arg is None and "--config" in argv[:-1]:
        config_arg = argv[argv.index("--config") + 1]
    if re.search(r"No such file or directory|Failed loading config file", text):
        path = (config_arg or "").split(":")[0]
        here = sorted(os.path.basename(p) for p in glob.glob(os.path.join(
            os.path.dirname(path) or "configs", "*.py")))
        return (f"--config={config_arg}: no such config file; give the path of a config file"
                + (f" (in {os.path.dirname(path) or 'configs'}/: {', '.join(here)})" if here else ""))
    # A misspelt field: --config.train.epoch=1 (ml_collections suggests the right name).
    flag = re.search(r"config(?:\.\w+)+", text)
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
            return _unknown_field(name)
        return f"--{name}: unknown flag; see --helpshort for the flags"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(err).__name__)
    return f"{flag.group(0) if flag else 'flags'}: {first}"


def _unknown_field(name: str) -> str:
    """``config.train.epoch`` -> a line with the closest existing field."""
    from tfvae.config import get_config
    from tfvae.runstate import _flatten, config_dict
    fields = list(_flatten(config_dict(get_config())))
    close = difflib.get_close_matches(name[len("config."):], fields, n=1)
    hint = f"; did you mean {close[0].rsplit('.', 1)[-1]} (--config.{close[0]})?" if close else ""
    return f"--{name}: no such field in the config{hint}"


def parse_flags(prog: str):
    """An absl ``flags_parser`` that turns every flag or config error into one line."""
    def parser(argv):
        from absl import flags
        try:
            rest = flags.FLAGS(argv)
            flags.FLAGS.config.keys()  # a config file that failed to load raises here
            return rest
        except flags.Error as err:  # absl's own: wrong flag values, unknown flags
            if "--help" in " ".join(argv):
                raise
            _fail(prog, _config_error(err, argv))
        except Exception as err:  # noqa: BLE001 - config files raise anything
            _fail(prog, _config_error(err, argv))
    return parser


def _fail(prog, message):
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def train_main():
    """Console entry point ``tfvae-train``."""
    quiet_tensorflow()
    from absl import app

    from tfvae import train
    try:
        train.define_flags()  # parses --config (and its overrides) from sys.argv already
    except Exception as err:  # noqa: BLE001 - config files raise anything
        _fail("tfvae-train", _config_error(err, sys.argv))
    app.run(train.main, flags_parser=parse_flags("tfvae-train"))


def evaluate_main():
    """Console entry point ``tfvae-evaluate``."""
    quiet_tensorflow()
    from absl import app

    from tfvae import evaluate
    evaluate.define_flags()
    app.run(evaluate.main, flags_parser=_plain_parser("tfvae-evaluate"))


def sample_main():
    """Console entry point ``tfvae-sample``."""
    quiet_tensorflow()
    from absl import app

    from tfvae import sample
    sample.define_flags()
    app.run(sample.main, flags_parser=_plain_parser("tfvae-sample"))


def _plain_parser(prog):
    """Flag errors as one line (no config flag here)."""
    def parser(argv):
        from absl import flags
        try:
            return flags.FLAGS(argv)
        except flags.Error as err:
            if "--help" in " ".join(argv):
                raise
            _fail(prog, str(err).splitlines()[0])
    return parser
