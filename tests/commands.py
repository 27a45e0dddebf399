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


def run_together(*argvs, timeout=600, cwd=None):
    """Runs independent commands at once (each is mostly one thread loading TensorFlow and the
    data, so two cores finish two in about the time of one); ``[CompletedProcess]`` in order."""
    import subprocess
    procs = [subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=cwd) for a in argvs]
    done = []
    for argv, proc in zip(argvs, procs):
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        done.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return done
