"""Figures, with matplotlib's file-only backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import torch  # noqa: E402

from .m2 import SemiSupervisedVAE  # noqa: E402
from .runs import held_out_elbo  # noqa: E402
from .sampling import displayed, draw_prior, style_latents  # noqa: E402
from .sampling import sample_images  # noqa: E402


def sample_grid(images, columns: int):
    """(n, H, W) or (n, H, W, 3) -> one (rows*H, columns*W[, 3]) array, row-major."""
    rows = -(-images.shape[0] // columns)
    height, width = images.shape[1:3]
    grid = images.new_zeros(rows * height, columns * width, *images.shape[3:])
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[row * height : (row + 1) * height, column * width : (column + 1) * width] = image
    return grid.numpy()


def show(axis, grid) -> None:
    """A grid of images in [0, 1]: grey through the grey colour map, colour as it is."""
    grey = dict(cmap="gray", vmin=0, vmax=1) if grid.ndim == 2 else {}
    axis.imshow(grid.clip(0, 1), interpolation="nearest", **grey)


def compare_figure(runs, records, path: Path, seed: int = 0) -> None:
    """Top: test ELBO per epoch, one panel per likelihood (their nats do not compare).
    Bottom: a grid of 36 prior samples per variant, titled with its bits per dimension."""
    likelihoods = list(dict.fromkeys(record["likelihood"] for record in records))
    figure = plt.figure(figsize=(4 * max(2, len(runs), len(likelihoods)), 8), constrained_layout=True)
    top, bottom = figure.subfigures(2, 1, height_ratios=[1, 1.2])
    curves = dict(zip(likelihoods, top.subplots(1, len(likelihoods), squeeze=False)[0]))
    for run, record in zip(runs, records):
        axis = curves[record["likelihood"]]
        epochs = [m["epoch"] for m in run.metrics]
        axis.plot(epochs, [held_out_elbo(m) for m in run.metrics], marker=".", label=record["variant"])
    for likelihood, axis in curves.items():
        axis.set_xlabel("epoch")
        axis.set_ylabel("test ELBO (nats per image)")
        axis.set_title(f"{likelihood} likelihood")
        axis.legend()
    panels = bottom.subplots(1, len(runs), squeeze=False)[0]
    for panel, run, record in zip(panels, runs, records):
        show(panel, sample_grid(sample_images(run.vae, n=36, seed=seed)[0], 6))
        panel.set_title(f"{record['variant']}\n{record['bits_per_dim']:.3f} bits/dim")
        panel.axis("off")
    figure.suptitle("pyro-vae compare: test ELBO per epoch (top) and prior samples (bottom)")
    figure.savefig(path, dpi=100)
    plt.close(figure)


SAMPLE_PANELS_PER_ROW = 4  # the leaderboard's sample grids: rows of four keep the figure readable on a page


def leaderboard_figure(groups: dict[str, list[dict]], path: Path, seed: int = 0) -> None:
    """Left: test NLL against training time, one point per variant, a panel for each group of rows
    that measure the same thing (``leaderboard.comparable_groups``: what each measures -> its rows,
    best first), so only comparable rows share an axis. Right: 36 prior samples of each."""
    from .runs import load_run

    ordered = [row for group in groups.values() for row in group]
    columns = min(len(ordered), SAMPLE_PANELS_PER_ROW)
    rows = -(-len(ordered) // columns)
    height = max(1.5 + 4 * len(groups), 0.5 + 2.7 * rows)
    figure = plt.figure(figsize=(5 + 2.4 * columns, height), constrained_layout=True)
    left, right = figure.subfigures(1, 2, width_ratios=[5, 2.4 * columns])
    axes = left.subplots(len(groups), 1, squeeze=False)[:, 0]
    number = 0
    for axis, (measures, group) in zip(axes, groups.items()):
        for row in group:
            number += 1
            axis.errorbar(row["train_seconds"] / 60, -row["log_likelihood"], yerr=row["log_likelihood_se"], marker="o",
                          label=f"{number}: {row['variant']}")  # fmt: skip
            axis.annotate(str(number), (row["train_seconds"] / 60, -row["log_likelihood"]), xytext=(5, 3),
                          textcoords="offset points")  # fmt: skip
        axis.set_title(f"-{measures}" if len(groups) > 1 else None, fontsize=8)
        axis.set_ylabel("test NLL, nats (IWAE bound; lower is better)", fontsize=8)
        axis.margins(x=0.25, y=0.15)
        axis.grid(alpha=0.3)
    axes[-1].set_xlabel("training time (minutes)")
    left.legend(loc="outside lower center", fontsize=7)
    panels = right.subplots(rows, columns, squeeze=False).flatten()
    for panel in panels[len(ordered) :]:
        panel.axis("off")
    for number, (panel, row) in enumerate(zip(panels, ordered), start=1):
        run = load_run(row["run"], device="cpu")
        show(panel, sample_grid(sample_images(run.vae, n=36, seed=seed)[0], 6))
        panel.set_title(f"{number}: {-row['log_likelihood']:.2f} nats", fontsize=9)
        panel.axis("off")
    figure.suptitle(f"pyro-vae leaderboard: test NLL (IWAE k={ordered[0]['k']}) against training time, and prior samples")
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)


# --- the figures of one run (``pyro-vae plot``, and the end of ``pyro-vae train``) -----------------

FIGURE_DPI = 100
FIGURE_SIZES = {  # inches; times FIGURE_DPI gives the PNG's pixels
    "elbo.png": (8, 5),
    "reconstructions.png": (8, 6.4),
    "latent.png": (8, 7),
    "manifold.png": (8, 8.4),
    "interpolations.png": (8, 7.4),
    "style.png": (8, 7.6),
}
PAIRS_TO_INTERPOLATE = 8
INTERPOLATION_STEPS = 10
MANIFOLD_SIDE = 20


def caption(run) -> str:
    """Two lines naming the run and the settings that shape its pictures."""
    config = run.config
    kind = "conditional VAE" if config.conditional else "VAE"
    if config.labels is not None:
        kind = f"semi-supervised conditional VAE ({config.labels} labels)"
    if config.visible_quadrants is not None:
        kind = f"image-completion CVAE ({config.visible_quadrants} visible quadrants)"
    done = run.metrics[-1]["epoch"] if run.metrics else 0
    start = f" from {Path(config.init_from).name}'s weights" if config.init_from else ""
    return (
        f"run {run.path.name}: {kind} on {_source_name(config)}, {config.likelihood} likelihood, {config.elbo} ELBO\n"
        f"z={config.z_dim}, {_networks(config)}, "
        f"{done} epochs{start} at lr {config.learning_rate:g}, seed {config.seed}"
    )


def _networks(config) -> str:
    if config.network == "conv":
        return f"conv channels {','.join(map(str, config.conv_channels))}"
    return f"hidden {','.join(map(str, config.hidden_dims))}"


def _source_name(config) -> str:
    """The source as a caption names it: its name, or a path's last part, and the image shape."""
    name = config.dataset if config.dataset in ("mnist", "fashion-mnist", "cifar10", "svhn") else Path(config.dataset).name
    channels, height, width = config.image_shape
    return f"{name} ({height}x{width}{'' if channels == 1 else ' colour'})"


def _new_figure(run, title: str, name: str, size: tuple[float, float] | None = None):
    figure = plt.figure(figsize=size or FIGURE_SIZES[name], dpi=FIGURE_DPI, constrained_layout=True)
    figure.suptitle(title)
    figure.supxlabel(caption(run), fontsize=8, color="0.3")
    return figure


def _save(figure, path: Path) -> Path:
    figure.savefig(path, dpi=FIGURE_DPI, metadata={"Software": None})
    plt.close(figure)
    return path


def _image_axis(axis, image, xlabel: str, ylabel: str, yticks=None, xticks=None):
    show(axis, image)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_xticks(*(xticks or ([], [])))
    axis.set_yticks(*(yticks or ([], [])))


def _row_ticks(labels, height: int) -> tuple[list[float], list[str]]:
    """Tick positions at the middle of each image row, ``height`` pixels apart."""
    return _centres(len(labels), height), [str(label) for label in labels]


def _centres(count: int, side: int, every: int = 1) -> list[float]:
    """Pixel positions of the middles of images ``side`` pixels apart (every ``every``-th one)."""
    return [side * index + (side - 1) / 2 for index in range(0, count, every)]


def _class_names(run) -> tuple[str, ...]:
    return run.config.class_names or ()


def elbo_figure(run, path: Path) -> Path:
    """Train and test ELBO per epoch (nats per image)."""
    figure = _new_figure(run, "ELBO per epoch", "elbo.png")
    axis = figure.add_subplot()
    epochs = [record["epoch"] for record in run.metrics]
    axis.plot(epochs, [record["train_elbo"] for record in run.metrics], marker=".", label="train (running mean)")
    held_out = "validation" if run.metrics and "val_elbo" in run.metrics[0] else "test"
    axis.plot(epochs, [held_out_elbo(record) for record in run.metrics], marker=".", label=held_out)
    axis.set_xlabel("epoch")
    axis.set_ylabel("ELBO (nats per image, higher is better)")
    axis.grid(alpha=0.3)
    axis.legend()
    return _save(figure, path)


@torch.no_grad()
def reconstruction_figure(run, test, path: Path, generator, pairs: int = 4, columns: int = 12) -> Path:
    """Rows of held-out images, each above its reconstruction E[x | z = z_loc(x)]; whole rows only,
    fewer of them for a small split."""
    columns = min(columns, len(test))
    pairs = max(1, min(pairs, len(test) // columns))
    index = torch.randperm(len(test), generator=generator)[: pairs * columns]
    x = test.batch(index)
    z_loc, y = _encode(run, x, test.labels[index.to(test.labels.device)])
    reconstruction = run.vae.decode_mean(z_loc, y)
    rows = []
    for pair in range(pairs):
        rows += [x[pair * columns : (pair + 1) * columns], reconstruction[pair * columns : (pair + 1) * columns]]
    images = displayed(torch.cat(rows), run.config.image_shape).cpu()
    held_out = "validation" if run.config.validation else "test"
    figure = _new_figure(run, f"{held_out.capitalize()} images (odd rows) and their reconstructions (even rows)",
                         "reconstructions.png")  # fmt: skip
    labels = [name for _ in range(pairs) for name in (held_out, "recon.")]
    xlabel = "reconstruction: the decoder's mean at z = E[z|x], the posterior mean"
    _image_axis(figure.add_subplot(), sample_grid(images, columns), xlabel, "",
                yticks=_row_ticks(labels, run.config.image_shape[1]))  # fmt: skip
    return _save(figure, path)


def _encode(run, x, labels):
    """(z_loc, y): the posterior means of ``x`` and the one-hot labels (None for a plain VAE)."""
    y = run.vae.one_hot(labels.to(x.device)) if run.config.conditional else None
    return run.vae.posterior_mean(x, y), y


@torch.no_grad()
def latent_figure(run, test, path: Path) -> Path:
    """The test set's latent means in 2-D, coloured by class (for a semi-supervised run, the class
    q(y|x) gives): z itself when z_dim == 2, else the first two principal components of the means
    (with the share of variance they explain)."""
    z_loc = torch.cat([_encode(run, x, labels)[0] for x, labels in test.chunks(1000)]).cpu()
    if z_loc.shape[1] == 2:
        points, xlabel, ylabel, how = z_loc, "z_1", "z_2", "the 2-D latent itself"
    else:
        centred = z_loc - z_loc.mean(0)
        _, singular, directions = torch.linalg.svd(centred, full_matrices=False)
        points = centred @ directions[:2].T
        share = (singular[:2] ** 2 / (singular**2).sum()).tolist()
        xlabel, ylabel = f"PC 1 ({share[0]:.0%} of variance)", f"PC 2 ({share[1]:.0%} of variance)"
        how = f"PCA of the {z_loc.shape[1]}-D latent means"
    split = "Validation" if run.config.validation else "Test"
    figure = _new_figure(run, f"{split}-set latent means E[z|x], {how}", "latent.png")
    axis = figure.add_subplot()
    names = _class_names(run)
    if not names:  # an unlabelled source: one colour, no legend of classes
        axis.scatter(points[:, 0], points[:, 1], s=2, alpha=0.6)
    else:
        classes, named = test.labels, "class"
        if isinstance(run.vae, SemiSupervisedVAE):  # its own guess of the class
            classes = torch.cat([run.vae.classify(x).logits.argmax(-1) for x, _ in test.chunks(1000)])
            named = "class by argmax q(y|x)"
        colours = plt.get_cmap("tab10" if len(names) <= 10 else "tab20" if len(names) <= 20 else "viridis")
        scatter = axis.scatter(points[:, 0], points[:, 1], c=classes.cpu(), cmap=colours, vmin=-0.5,
                               vmax=len(names) - 0.5, s=2, alpha=0.6)  # fmt: skip
        colour_bar = figure.colorbar(scatter, ax=axis, ticks=range(len(names)))
        colour_bar.ax.set_yticklabels(names)
        colour_bar.set_label(named)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    return _save(figure, path)


@torch.no_grad()
def prior_quantiles(vae, quantiles: torch.Tensor, draws: int = 200_000) -> torch.Tensor:
    """Each latent dimension's marginal prior quantiles, (len(quantiles), z_dim), on the CPU: exact
    through the inverse CDF for a Gaussian prior, else from ``draws`` prior samples (fixed seed)."""
    prior = vae.prior((1,))
    base = prior.base_dist if isinstance(prior, torch.distributions.Independent) else None
    if isinstance(base, torch.distributions.Normal) and not vae.downward:
        return base.icdf(quantiles.to(base.loc.device)[:, None]).cpu()
    samples = draw_prior(vae, draws, torch.Generator().manual_seed(0)).cpu()
    return torch.quantile(samples, quantiles, dim=0)


@torch.no_grad()
def manifold_figure(run, path: Path, side: int = MANIFOLD_SIDE) -> Path:
    """2-D latent only: decoder means over a side x side grid of prior quantiles 0.05..0.95,
    z = Phi^-1(q); a conditional run shows its first class."""
    quantiles = torch.linspace(0.05, 0.95, side)
    values = prior_quantiles(run.vae, quantiles)
    z_1, z_2 = torch.meshgrid(values[:, 0], values[:, 1].flip(0), indexing="xy")
    z = torch.stack([z_1.reshape(-1), z_2.reshape(-1)], dim=1).to(run.device)
    condition, title = None, "Decoded manifold over prior quantiles of the 2-D latent"
    if run.config.conditional:
        condition = run.vae.one_hot(torch.zeros(z.shape[0], dtype=torch.int64, device=run.device))
        title += f", class {_class_names(run)[0]}"
    images = displayed(run.vae.decode_mean(z, condition), run.config.image_shape).cpu()
    figure = _new_figure(run, title, "manifold.png")
    _, height, width = run.config.image_shape
    xticks, yticks = _centres(side, width, 4), _centres(side, height, 4)
    _image_axis(
        figure.add_subplot(), sample_grid(images, side), "z_1 (prior quantile)", "z_2 (prior quantile)",
        xticks=(xticks, [f"{quantiles[i]:.2f}" for i in range(0, side, 4)]),
        yticks=(yticks, [f"{quantiles.flip(0)[i]:.2f}" for i in range(0, side, 4)]),
    )  # fmt: skip
    return _save(figure, path)


@torch.no_grad()
def interpolation_figure(run, test, path: Path, generator) -> Path:
    """Decoder means along straight lines z = (1 - t) z_loc(a) + t z_loc(b) between pairs of test
    images: different classes for a VAE; the same class (and label) for a conditional VAE."""
    names = _class_names(run)
    first = torch.randperm(len(test), generator=generator)[:PAIRS_TO_INTERPOLATE]
    labels = test.labels.cpu()
    second = []
    for start in first.tolist():
        wanted = (labels == labels[start]) if run.config.conditional else (labels != labels[start])
        if not names:  # no classes: any other image
            wanted = torch.arange(len(labels)) != start
        candidates = torch.nonzero(wanted).squeeze(1)
        second.append(candidates[torch.randint(len(candidates), (1,), generator=generator)].item())
    ends = torch.stack([first, torch.tensor(second)])  # (2, pairs)
    labels_first = test.labels[ends[0].to(test.labels.device)]
    z_loc = [_encode(run, test.batch(end), labels_first)[0] for end in ends]
    t = torch.linspace(0, 1, INTERPOLATION_STEPS, device=z_loc[0].device).reshape(1, -1, 1)
    z = ((1 - t) * z_loc[0][:, None] + t * z_loc[1][:, None]).reshape(-1, run.vae.latent_size)
    condition = None
    if run.config.conditional:
        condition = run.vae.one_hot(labels_first.repeat_interleave(INTERPOLATION_STEPS).to(run.device))
    images = displayed(run.vae.decode_mean(z, condition), run.config.image_shape).cpu()
    figure = _new_figure(run, "Latent interpolations between pairs of held-out images", "interpolations.png")
    _, height, width = run.config.image_shape
    steps = _centres(INTERPOLATION_STEPS, width)
    pair_names = [f"{names[labels[a]]}→{names[labels[b]]}" if names else f"{a}→{b}" for a, b in zip(first.tolist(), second)]
    _image_axis(
        figure.add_subplot(), sample_grid(images, INTERPOLATION_STEPS), "t (0: first image's z, 1: second's)", "pair",
        xticks=(steps, [f"{value:.2f}" for value in t.flatten().tolist()]),
        yticks=_row_ticks(pair_names, height),
    )  # fmt: skip
    return _save(figure, path)


@torch.no_grad()
def style_figure(run, path: Path, generator, columns: int = 12) -> Path:
    """Conditional only: one row per class, the same z ~ p(z) down each column, so a column
    holds one style and a row one class."""
    classes = run.config.num_classes
    labels = torch.arange(classes).repeat_interleave(columns)
    condition = run.vae.one_hot(labels.to(run.device))
    z = style_latents(run.vae, columns, condition, generator)
    images = displayed(run.vae.decode_mean(z, condition), run.config.image_shape).cpu()
    figure = _new_figure(run, "Style held, class changed: the same z down each column", "style.png")
    _image_axis(
        figure.add_subplot(), sample_grid(images, columns), "z ~ p(z), one draw per column", "class",
        yticks=_row_ticks(_class_names(run), run.config.image_shape[1]),
    )  # fmt: skip
    return _save(figure, path)


@torch.no_grad()
def completion_figure(run, test, path: Path, generator, n: int = 10, draws: int = 6) -> Path:
    """Rows of test images: the visible input (hidden pixels grey), the truth, the baseline's
    prediction and ``draws`` CVAE completions, z ~ p(z | x_visible)."""
    from .completion import complete, completion_rows

    index = torch.randperm(len(test), generator=generator)[:n]
    images, columns, rows = completion_rows(complete(run.vae, test.batch(index), draws, generator))
    images = displayed(images.reshape(images.shape[0], -1), run.config.image_shape)
    size = (8, 2 + 7.6 * rows / columns)  # the grid's own aspect, plus room for the labels
    figure = _new_figure(run, "Completing held-out images from the visible quadrants", "completion.png", size)
    names = ["input", "truth", "baseline"] + [f"CVAE {draw + 1}" for draw in range(draws)]
    xticks = (_centres(columns, run.config.image_shape[2]), names)
    _image_axis(figure.add_subplot(), sample_grid(images, columns), "hidden pixels: the baseline's mean, or the CVAE's "
                "mean E[x_hidden | z, x_visible] for one z ~ p(z | x_visible) each", "", xticks=xticks)  # fmt: skip
    return _save(figure, path)


def plot_run(run, out_dir: Path | None = None, seed: int = 0, data_dir: str | None = None) -> list[Path]:
    """Every figure of ``run`` as PNG files in ``out_dir`` (default: the run directory); the same
    ``seed`` gives the same pictures. Returns the paths written."""
    from .data import load_data

    out_dir = Path(out_dir or run.path)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = run.config
    data = load_data(config, run.device, data_dir=data_dir)
    generator = torch.Generator().manual_seed(seed)
    run.vae.eval()
    held_out = data.held_out  # with --validation the figures, too, leave the test split to evaluate
    paths = [] if not run.metrics else [elbo_figure(run, out_dir / "elbo.png")]
    if config.visible_quadrants is not None:  # no p(z) to sample from: completions instead
        return paths + [completion_figure(run, held_out, out_dir / "completion.png", generator)]
    paths.append(reconstruction_figure(run, held_out, out_dir / "reconstructions.png", generator))
    paths.append(latent_figure(run, held_out, out_dir / "latent.png"))
    if run.vae.latent_size == 2:
        paths.append(manifold_figure(run, out_dir / "manifold.png"))
    paths.append(interpolation_figure(run, held_out, out_dir / "interpolations.png", generator))
    if config.conditional:
        paths.append(style_figure(run, out_dir / "style.png", generator))
    return paths
