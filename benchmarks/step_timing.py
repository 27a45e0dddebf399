"""What the step-cost benchmarks share: a compiled model's median seconds per training step."""
import time

import numpy as np


def median_step_seconds(vae, train, steps: int, repeats: int, warmup: int = 64) -> float:
    """Median over ``repeats`` fits of ``steps`` steps each on ``train`` (a repeating dataset),
    after ``warmup`` steps that hold the tracing and compilation."""
    vae.fit(train, steps_per_epoch=warmup, epochs=1, verbose=0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        vae.fit(train, steps_per_epoch=steps, epochs=1, verbose=0)
        times.append((time.perf_counter() - start) / steps)
    return float(np.median(times))
