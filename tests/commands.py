"""The installed console commands, as a user runs them (``pip install -e .`` puts them beside
the interpreter)."""
import os
import sys

BIN = os.path.dirname(sys.executable)


def command(name):
    """``[path of tfvae-NAME]``: the start of a subprocess argument list."""
    path = os.path.join(BIN, f"tfvae-{name}")
    if not os.path.exists(path):
        raise RuntimeError(f"{path} is not installed: pip install -e . first")
    return [path]
