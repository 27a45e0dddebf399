"""Figures as PNG files: functions of arrays (no training inside), each returns the path written."""
import math
import os
from typing import Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from tfvae import storage


def is_image(shape) -> bool:
    """Whether data of ``shape`` ``(H, W, C)`` are pictures to draw (grey or colour), not
    features (``data.features``: ``(1, 1, d)``)."""
    return shape[-1] in (1, 3) and min(shape[:2]) > 1


def _tile(images: np.ndarray, ncols: int, pad: int = 1) -> np.ndarray:
    """Tiles ``[N, H, W, C]`` images into one ``[rows*H, ncols*W, C]`` canvas."""
    images = np.asarray(images, np.float32)
    n, h, w, c = images.shape
    nrows = math.ceil(n / ncols)
    canvas = np.ones((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), np.float32)
    for i, img in enumerate(images):
        r, col = divmod(i, ncols)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h,
               pad + col * (w + pad): pad + col * (w + pad) + w] = img
    return canvas


def _show(ax, canvas):
    if canvas.shape[-1] == 1:
        ax.imshow(canvas[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(np.clip(canvas, 0.0, 1.0), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _subplots(*args, layout=None, **kwargs):
    """A figure of its own and its axes, like ``plt.subplots`` but outside pyplot: drawing a
    PNG neither needs nor changes the session's matplotlib backend (a notebook's inline plots
    keep working), and nothing is left open."""
    figure_kwargs = {k: kwargs.pop(k) for k in ("figsize",) if k in kwargs}
    fig = Figure(layout=layout, **figure_kwargs)
    return fig, fig.subplots(*args, **kwargs)


def _save(fig, path):
    """Writes the PNG whole or not at all (`tfvae.storage.atomic_path`)."""
    with storage.atomic_path(path) as tmp:
        fig.savefig(tmp, format=os.path.splitext(path)[1][1:] or "png", dpi=110,
                    bbox_inches="tight")
    return path


def image_grid(images, path, ncols: int = 8, title: str = ""):
    """A grid of images ``[N, H, W, C]`` in [0, 1], e.g. samples from the model."""
    canvas = _tile(images, ncols)
    fig, ax = _subplots(figsize=(ncols * 0.9, canvas.shape[0] / canvas.shape[1] * ncols * 0.9 + 0.4))
    _show(ax, canvas)
    ax.set_title(title)
    return _save(fig, path)


def labelled_grid(images, path, title: str = "", row_labels: Sequence[str] = (),
                  col_labels: Sequence[str] = ()):
    """Images ``[rows, cols, H, W, C]`` in [0, 1] as one grid, rows and columns labelled."""
    images = np.asarray(images, np.float32)
    rows, cols, h, w = images.shape[:4]
    size = 0.75 if max(h, w) <= 32 else 1.2
    fig, ax = _subplots(figsize=(cols * size + (1.2 if row_labels else 0.3),
                                    rows * size * h / w + 0.8))
    _show(ax, _tile(images.reshape((-1,) + images.shape[2:]), cols))
    if row_labels:
        ax.set_yticks([1 + (h + 1) * (i + 0.5) for i in range(rows)])
        ax.set_yticklabels(row_labels, fontsize=8)
    if col_labels:
        ax.set_xticks([1 + (w + 1) * (j + 0.5) for j in range(cols)])
        ax.set_xticklabels(col_labels, fontsize=7)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def reconstructions(originals, reconstructed, path, title: str = "Reconstructions"):
    """Originals (top row of each pair) above their reconstructions (bottom row)."""
    originals, reconstructed = np.asarray(originals), np.asarray(reconstructed)
    n = len(originals)
    fig, axes = _subplots(2, 1, figsize=(n * 0.8, 2.2))
    _show(axes[0], _tile(originals, n))
    _show(axes[1], _tile(reconstructed, n))
    axes[0].set_ylabel("data", rotation=0, ha="right", va="center")
    axes[1].set_ylabel("recon.", rotation=0, ha="right", va="center")
    fig.suptitle(title)
    return _save(fig, path)


def traversal_values(z: np.ndarray, dims: Sequence[int], num: int = 9,
                     coverage: float = 0.98) -> np.ndarray:
    """Per dimension, ``num`` values spanning the central ``coverage`` of the codes ``z``
    ``[N, L]`` (quantiles of the aggregated posterior): a sweep that stays where the data's codes
    are, whatever the prior. Returns ``[len(dims), num]``."""
    tail = (1.0 - coverage) / 2.0
    levels = np.linspace(tail, 1.0 - tail, num)
    return np.stack([np.quantile(np.asarray(z)[:, d], levels) for d in dims])


def traversals(images, values, dims: Sequence[int], path, title: str = "Latent traversals",
               axis_label: str = "value, from the low to the high end of the codes' range "
                                 "(quantiles)", row_name: str = "z"):
    """Rows: one latent dimension each; columns: its value (others at a posterior mean).

    ``images``: ``[len(dims), len(values), H, W, C]``; ``values``: ``[cols]`` shared by every
    row, or ``[rows, cols]`` (e.g. `traversal_values`), shown as each row's range.
    """
    images = np.asarray(images)
    values = np.asarray(values, np.float64)
    rows, cols = images.shape[:2]
    per_row = values.ndim == 2
    fig, ax = _subplots(figsize=(cols * 0.8 + (1.6 if per_row else 0.8), rows * 0.8 + 0.6))
    _show(ax, _tile(images.reshape((-1,) + images.shape[2:]), cols))
    h = images.shape[2] + 1
    w = images.shape[3] + 1
    ax.set_yticks([1 + h * (i + 0.5) for i in range(rows)])
    if per_row:
        ax.set_yticklabels([f"{row_name}{d}: {v[0]:+.2f} .. {v[-1]:+.2f}"
                            for d, v in zip(dims, values)], fontsize=7)
        ax.set_xticks([])
        ax.set_xlabel(axis_label, fontsize=7)
    else:
        ax.set_yticklabels([f"z{d}" for d in dims])
        ax.set_xticks([1 + w * (j + 0.5) for j in range(cols)])
        ax.set_xticklabels([f"{v:+.1f}" for v in values], fontsize=7)
    ax.set_title(title)
    return _save(fig, path)


def _class_colorbar(fig, mappable, ax, labels, class_names, **kwargs):
    """A colour bar of the label classes, ticked with their names where known."""
    bar = fig.colorbar(mappable, ax=ax, label="class", **kwargs)
    if labels is not None:
        names = (list(class_names) if class_names is not None
                 else [str(k) for k in range(max(10, int(np.max(labels)) + 1))])
        bar.set_ticks(np.arange(len(names)))
        bar.set_ticklabels(names, fontsize=7)
    return bar


def _window(z, minimum=3.0):
    """Axis limits covering the central 99% of ``z`` [N, 2] and at least [-minimum, minimum]."""
    lo = np.minimum(np.percentile(z, 0.5, axis=0), -minimum)
    hi = np.maximum(np.percentile(z, 99.5, axis=0), minimum)
    pad = 0.08 * (hi - lo)
    return lo - pad, hi + pad


def latent_density(panels, path, title: str = "", class_names: Optional[Sequence[str]] = None):
    """Prior log-density (shading, and contour lines 2 nats apart) with the aggregated posterior
    on top, one panel per prior.

    ``panels``: a list of dicts with ``name``, ``log_density`` (a function ``[N, 2] -> [N]``, or
    None), ``z`` (posterior samples ``[M, 2]``) and optional ``labels`` ``[M]``. Each panel's
    window covers its samples and at least [-3, 3]^2.
    """
    n = len(panels)
    with_bar = bool(panels) and panels[-1].get("labels") is not None
    # Constrained layout keeps each panel's axis labels out of its neighbour and puts the colour
    # bar right beside the last panel.
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = _subplots(nrows, ncols, figsize=(3.9 * ncols + (1.0 if with_bar else 0.2),
                                                    3.9 * nrows + 0.3),
                             squeeze=False, layout="constrained")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    scatter = None
    for ax, panel in zip(axes.ravel(), panels):
        z, labels = np.asarray(panel["z"]), panel.get("labels")
        lo, hi = _window(z)
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
        log_p = None
        if panel.get("log_density") is not None:
            points = np.stack([gx.ravel(), gy.ravel()], -1).astype(np.float32)
            log_p = np.asarray(panel["log_density"](points), np.float64).reshape(gx.shape)
            # Log density, 12 nats down from its peak: shows the tails where holes would be.
            log_p = np.maximum(log_p, log_p.max() - 12.0)
            ax.contourf(gx, gy, log_p, levels=24, cmap="Blues")
        colours = ({"c": labels, "cmap": "tab10", "vmin": -0.5,
                    "vmax": (len(class_names) if class_names is not None else 10) - 0.5}
                   if labels is not None else {"c": "tab:red"})
        scatter = ax.scatter(z[:, 0], z[:, 1], s=2, alpha=0.5, **colours)
        if log_p is not None:
            ax.contour(gx, gy, log_p, levels=np.linspace(log_p.max() - 10, log_p.max(), 6),
                       colors="k", linewidths=0.6)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_title(panel["name"])
        ax.set_xlabel("$z_1$")
        ax.set_ylabel("$z_2$")
    if with_bar:
        _class_colorbar(fig, scatter, axes.ravel().tolist(), panels[-1]["labels"], class_names,
                        shrink=0.85, pad=0.01, aspect=30)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def latent_scatter(z, path, labels: Optional[np.ndarray] = None, title: str = "",
                   class_names: Optional[Sequence[str]] = None):
    """Posterior means projected on their two principal axes (the plane itself if L = 2);
    coloured by ``labels``, with ``class_names`` on the colour bar where given."""
    z = np.asarray(z, np.float64)
    if z.shape[1] > 2:
        centred = z - z.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        z2, axes = centred @ vt[:2].T, ("PC 1", "PC 2")
    else:
        z2, axes = z, ("$z_1$", "$z_2$")
    fig, ax = _subplots(figsize=(5, 4.5))
    kwargs = {}
    if labels is not None:
        top = len(class_names) - 1 if class_names is not None else max(9, int(np.max(labels)))
        kwargs = {"cmap": "tab10", "vmin": -0.5, "vmax": top + 0.5}
    sc = ax.scatter(z2[:, 0], z2[:, 1], s=3, alpha=0.6, c=labels, **kwargs)
    if labels is not None:
        _class_colorbar(fig, sc, ax, labels, class_names)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title or "Posterior means of test images")
    return _save(fig, path)


def training_curves(history: dict, path, keys=("elbo", "val_elbo")):
    """ELBO (and any other logged keys) per epoch; None, and no file, where ``history`` has
    no epoch of them (a run of imported weights, never trained)."""
    if not any(len(history.get(key, ())) for key in keys):
        return None
    fig, ax = _subplots(figsize=(6, 3.5))
    for key in keys:
        if key in history:
            ax.plot(np.arange(1, len(history[key]) + 1), history[key], label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def gradient_variance_curves(history: dict, path, title: str = "Variance of the inference "
                             "gradient (same parameters, same batch)"):
    """Each ``grad_variance_<estimator>`` (and the training estimator's ``grad_variance``) per
    epoch, log scale; None where ``history`` has none."""
    keys = sorted(k for k in history if k.startswith("grad_variance") and len(history[k]))
    if not keys:
        return None
    fig, ax = _subplots(figsize=(6.5, 4))
    for key in keys:
        name = key[len("grad_variance_"):] or "training estimator"
        values = np.asarray(history[key], np.float64)
        ax.plot(np.arange(1, len(values) + 1), values, label=name,
                ls="--" if key == "grad_variance" else "-")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("trace of Cov[gradient]")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def prior_histograms(panels, path, dims: Sequence[int] = (0, 1, 2, 3), bins: int = 60,
                     title: str = "Prior samples vs aggregated posterior, per coordinate"):
    """For latents of more than 2 dimensions: one row per prior, one column per coordinate, the
    histogram of prior samples over that of aggregated-posterior samples (holes show as bars of
    prior mass where the posterior has none).

    ``panels``: dicts with ``name``, ``prior_samples`` ``[N, L]`` and ``posterior_samples``
    ``[M, L]``.
    """
    dims = [d for d in dims if d < np.asarray(panels[0]["prior_samples"]).shape[1]]
    fig, axes = _subplots(len(panels), len(dims),
                             figsize=(3.0 * len(dims) + 1.0, 2.1 * len(panels) + 0.8),
                             squeeze=False, layout="constrained")
    for i, (row, panel) in enumerate(zip(axes, panels)):
        prior, post = np.asarray(panel["prior_samples"]), np.asarray(panel["posterior_samples"])
        for ax, d in zip(row, dims):
            lo = min(np.percentile(prior[:, d], 0.5), np.percentile(post[:, d], 0.5))
            hi = max(np.percentile(prior[:, d], 99.5), np.percentile(post[:, d], 99.5))
            edges = np.linspace(lo, hi, bins)
            ax.hist(post[:, d], edges, density=True, alpha=0.55, color="tab:red",
                    label="aggregated posterior q(z)")
            ax.hist(prior[:, d], edges, density=True, histtype="step", lw=1.5, color="tab:blue",
                    label="prior p(z)")
            ax.set_yticks([])
            if d == dims[0]:
                ax.set_ylabel(panel["name"], rotation=0, ha="right", va="center")
            if i == 0:
                ax.set_title(f"$z_{{{d}}}$")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def rate_distortion(curves, path, title: str = "Rate-distortion plane (test set)"):
    """Distortion D against rate R, one line per prior through its beta sweep, with lines of
    equal ELBO (D + R = const, dashed) behind them (Alemi et al. 2018).

    ``curves``: ``{name: [(beta, R, D), ...]}``.
    """
    fig, ax = _subplots(figsize=(6.4, 4.8), layout="constrained")
    rates = [r for points in curves.values() for _, r, _ in points]
    dists = [d for points in curves.values() for _, _, d in points]
    lo_r, hi_r = 0.0, max(rates) * 1.15 + 1
    lo_d, hi_d = min(dists) * 0.95, max(dists) * 1.05 + 1
    totals = np.linspace(lo_r + lo_d, hi_r + hi_d, 12)
    for c in totals:
        ax.plot([lo_r, hi_r], [c - lo_r, c - hi_r], color="0.8", ls="--", lw=0.7, zorder=0)
    ax.plot([], [], color="0.8", ls="--", lw=0.7, label="equal ELBO: D + R = const")
    for name, points in curves.items():
        points = sorted(points, key=lambda p: p[1])
        ax.plot([p[1] for p in points], [p[2] for p in points], "o-", label=name)
        for beta, r, d in points:
            ax.annotate(f"beta={beta:g}", (r, d), textcoords="offset points", xytext=(4, 4),
                        fontsize=7)
    ax.set_xlim(lo_r, hi_r)
    ax.set_ylim(lo_d, hi_d)
    ax.set_xlabel("rate R (nats)")
    ax.set_ylabel("distortion D (nats)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.2)
    return _save(fig, path)
