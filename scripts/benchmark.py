#!/usr/bin/env python3
"""Every speed figure of docs/RESULTS.md against its PyTorch twin, one right after the other, and
the ratios. Run it on an otherwise idle machine: PyTorch's OpenMP threads slow down many times
over when another process shares the cores, so a busy machine gives meaningless ratios.

    python scripts/benchmark.py                      # all comparisons, 2 repeats each
    python scripts/benchmark.py --only=mlp3,iw --repeats=3

Comparisons (``--only``):

- ``mlp1``, ``mlp3``: ``../shared/bench/ref_torch_vae.py`` for 1 or 3 epochs against
  ``benchmarks/bench_vs_torch.py`` (same model and data);
- ``iw``: ``benchmarks/iw_torch_ref.py`` (the reference's ``iwae``, k = 1,000, 20 images per
  call) against ``benchmarks/iw_eval_speed.py --network=reference``;
- ``conv``: ``benchmarks/conv_torch_twin.py`` (64 x 64) against ``benchmarks/conv_speed.py``;
- ``disarm``, ``vimco``: ``benchmarks/torch_discrete_twin.py`` against
  ``benchmarks/discrete_vs_torch.py``, 3 epochs.

Each tfvae side runs in the settings ``--settings`` names (``default``: the product's defaults,
float32 with ``train.jit_compile=auto``; ``auto``: ``train.precision=auto``, mixed bfloat16 where
the CPU computes it natively, then XLA off). Within a repeat the PyTorch side runs first, then
each setting; the ratio is tfvae's images/s over PyTorch's of the same repeat. PyTorch comes from
``--torch_python`` (made as a venv with ``pip install torch numpy`` where it is missing).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("TFVAE_SHARED", os.path.join(ROOT, "..", "shared"))
MNIST = os.path.join(SHARED, "data", "mnist")
RATE = re.compile(r'(?:train_img_per_s|images_per_s)"?(?:=|: )([0-9.]+)|: ([0-9.]+) images/s')


def _bench(name, *args):
    return [os.path.join(ROOT, "benchmarks", name), *args]


# name: (torch command, {setting: tfvae command}, what is compared)
def comparisons():
    mlp = lambda e: (  # noqa: E731
        [os.path.join(SHARED, "bench", "ref_torch_vae.py"), "--data", MNIST, "--epochs", str(e)],
        {"default": _bench("bench_vs_torch.py", "--data", MNIST, "--epochs", str(e)),
         "auto": _bench("bench_vs_torch.py", "--data", MNIST, "--epochs", str(e),
                        "--precision=auto")},
        f"MLP training, {e} epoch{'s' * (e > 1)} end to end")
    return {
        "mlp1": mlp(1), "mlp3": mlp(3),
        "iw": (_bench("iw_torch_ref.py", "--k", "1000", "--images", "200"),
               {s: _bench("iw_eval_speed.py", "--network=reference", "--batch=20",
                          "--examples=200", "--k=1000", f"--precision={p}")
                for s, p in (("default", "float32"), ("auto", "auto"))},
               "IS log-likelihood, k = 1,000"),
        "conv": (_bench("conv_torch_twin.py", "--size=64", "--epochs=3"),
                 {"default": _bench("conv_speed.py", "--size=64", "--epochs=3", "--settings=f32"),
                  "auto": _bench("conv_speed.py", "--size=64", "--epochs=3",
                                 "--settings=auto")},
                 "conv VAE training 64 x 64, steady state"),
        **{e: (_bench("torch_discrete_twin.py", "--data", MNIST, "--estimator", e, "--epochs", "3"),
               {"default": _bench("discrete_vs_torch.py", "--data", MNIST, "--estimator", e,
                                  "--epochs", "3")},
               f"linear 200-bit VAE, {'DisARM' if e == 'disarm' else 'VIMCO (k = 2)'}, "
               "3 epochs end to end") for e in ("disarm", "vimco")},
    }


def rate_of(output: str) -> float:
    """The images/s a benchmark printed (the last figure of its last line that has one)."""
    for line in reversed(output.splitlines()):
        found = [m for m in RATE.finditer(line)]
        if found:
            return float(next(g for g in found[0].groups() if g))
    raise ValueError("no images/s in its output")


def run(python, command) -> tuple:
    out = subprocess.run([python, *command], capture_output=True, text=True, cwd=ROOT)
    try:
        return rate_of(out.stdout), out.stdout.strip().splitlines()[-1]
    except (ValueError, IndexError):
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        return float("nan"), f"failed: {tail[0]}"


def torch_python(path: str) -> str:
    python = os.path.join(path, "bin", "python")
    if not os.path.exists(python):
        print(f"making {path} with torch (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "torch", "numpy"], check=True)
    return python


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--only", default="mlp1,mlp3,iw,conv,disarm,vimco")
    a.add_argument("--settings", default="default,auto")
    a.add_argument("--repeats", type=int, default=2)
    a.add_argument("--torch_python", default=os.path.join(ROOT, ".venv-torchref"),
                   help="a venv with torch (made where missing)")
    a.add_argument("--verbose", action="store_true", help="print each side's own line")
    args = a.parse_args()
    table = comparisons()
    unknown = [n for n in args.only.split(",") if n not in table]
    if unknown:
        sys.exit(f"error: --only={','.join(unknown)} unknown; choose from {', '.join(table)}")
    tp = torch_python(args.torch_python)
    rows = []
    for name in args.only.split(","):
        torch_cmd, sides, what = table[name]
        settings = [s for s in args.settings.split(",") if s in sides]
        ratios = {s: [] for s in settings}
        rates = {s: [] for s in ["torch"] + settings}
        for _ in range(args.repeats):
            t, line = run(tp, torch_cmd)
            rates["torch"].append(t)
            if args.verbose:
                print(f"  {line}", flush=True)
            for s in settings:
                r, line = run(sys.executable, sides[s])
                rates[s].append(r)
                ratios[s].append(r / t)
                if args.verbose:
                    print(f"  [{s}] {line}", flush=True)
        for s in settings:
            rows.append((name, what, s, rates["torch"], rates[s], ratios[s]))
            print(f"{name:7s} {s:8s} torch {_span(rates['torch'])} img/s, tfvae "
                  f"{_span(rates[s])} img/s: {_span(ratios[s], '.2f')}x   ({what})", flush=True)
    print("\n| comparison | setting | PyTorch images/s | tfvae images/s | ratio (median) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, what, s, t, r, q in rows:
        print(f"| {what} | {s} | {_span(t)} | {_span(r)} | {statistics.median(q):.2f}x |")


def _span(values, fmt=",.0f") -> str:
    lo, hi = min(values), max(values)
    return f"{lo:{fmt}}" if lo == hi else f"{lo:{fmt}} - {hi:{fmt}}"


if __name__ == "__main__":
    main()
