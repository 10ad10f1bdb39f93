"""The leaderboard: trained runs of any variants, scored by the one evaluator on the same test set,
next to the published figure for a comparable model.

Each row: ``variant`` (named from the run's configuration), ``run``, ``command`` (the training
command that remakes it), ``epochs``, ``train_seconds`` (summed over the run and the runs it was
fine-tuned from), ``device``, ``k``, ``elbo``, ``log_likelihood`` (IWAE bound, negative nats),
``log_likelihood_se``, ``active_units``, ``fid``, ``classifier_sha256``, ``paper``, ``paper_nll``, and
``measures``: what the bound is a bound of (log p(x), log p(x|y) or log p(x_hidden|x_visible)) under
which likelihood. Rows are ranked only against rows that measure the same thing, in a table (and a
panel of the figure) each, and a published figure stands only beside a row measured under its protocol.

A row's evaluation is saved beside its run as ``evaluate-k{k}.json`` (what ``evaluate --json``
prints) and reused while the run's weights are the ones it scored (``weights_sha256``), so a
leaderboard of many runs at k=5000 costs one evaluation per new run, not one per run each time.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .checkpoint import weights_fingerprint
from .config import Config
from .sources.named import MNIST_SHAPE
from .evaluation import evaluate, judged_figures
from .likelihoods import SCORED
from .runs import Run, load_run, read_metrics

# Published test NLLs on dynamically binarized MNIST (IWAE estimate, k=5000), MLP networks.
PUBLISHED = {
    ("vae", 1): ("Burda et al. 2015, Table 1, VAE, 1 stochastic layer", 86.76),
    ("vae", 2): ("Burda et al. 2015, Table 1, VAE, 2 stochastic layers", 85.33),
    ("iwae50", 1): ("Burda et al. 2015, Table 1, IWAE k=50, 1 stochastic layer", 84.78),
    ("iwae50", 2): ("Burda et al. 2015, Table 1, IWAE k=50, 2 stochastic layers", 82.90),
    ("vamp", 1): ("Tomczak & Welling 2018, VAE + VampPrior (MLP, 500 pseudo-inputs)", 85.57),
    ("vamp", 2): ("Tomczak & Welling 2018, two-layer VAE + VampPrior (MLP)", 83.19),
    ("lvae", 5): ("Sonderby et al. 2016, Ladder VAE, 5 stochastic layers (MLP)", 81.74),
}


def variant_name(config: Config) -> str:
    """A short name from the pieces that differ from the default VAE."""
    parts = []
    if config.stochastic_layers > 1:
        parts.append(f"{config.stochastic_layers} latent groups (top-down)")
    if config.prior == "vamp":
        parts.append(f"VampPrior ({config.pseudo_inputs})")
    if config.posterior == "iaf":
        parts.append(f"IAF ({config.flows} flows)")
    if config.objective == "iwae":
        parts.append(f"IWAE K={config.particles}")
    if config.kl_warmup:
        parts.append(f"KL warm-up {config.kl_warmup} epochs")
    if config.beta != 1:
        parts.append(f"beta {config.beta:g}")
    if config.init_from:
        parts.append(f"fine-tuned at lr {config.learning_rate:g}")
    model = "VAE"
    if config.visible_quadrants is not None:
        model = f"completion CVAE ({config.visible_quadrants} visible quadrants)"
    elif config.labels is not None:
        model = f"M2 ({config.labels} labels)"
    elif config.conditional:
        model = "conditional VAE"
    model = f"conv {model}" if config.network == "conv" else model
    return model + ("" if not parts else " + " + " + ".join(parts))


def measured_quantity(config: Config) -> str:
    """What a run's test bound is a bound of, on which data: rows are comparable only within one. A
    semi-supervised run's bound is of log p(x) (y summed out), like an unconditional VAE's."""
    if config.visible_quadrants is not None:
        target = "log p(x_hidden | x_visible)"
    elif config.conditional and config.labels is None:
        target = "log p(x | y)"
    else:
        target = "log p(x)"
    return f"{target}, {SCORED[config.likelihood][0]}"


def published_figure(config: Config) -> tuple[str | None, float | None]:
    """The comparable published figure, or (a note, None) where none is comparable: the figures below
    are of log p(x) of all of dynamically binarized MNIST at 28x28 with a Bernoulli likelihood."""
    if config.dataset != "mnist" or config.image_shape != MNIST_SHAPE or config.subset:
        return f"the published figures are for all of MNIST at 28x28, not {Path(config.dataset).name}", None
    if measured_quantity(config) != measured_quantity(Config()):
        return f"the published figures are of log p(x) with a Bernoulli likelihood, not {measured_quantity(config)}", None
    layers = config.stochastic_layers
    if config.network == "conv":
        return "the published figures are for MLP networks: compare with the MLP row of the same recipe", None
    if config.posterior == "iaf":
        return "Kingma et al. 2016 report IAF with convolutional ResNets only (about 79-80 nats)", None
    if layers > 2:  # the deepest published MLP hierarchy
        return PUBLISHED[("lvae", 5)]
    if config.prior == "vamp":
        return PUBLISHED[("vamp", layers)]
    if config.objective == "iwae":
        if config.particles == 50:
            return PUBLISHED[("iwae50", layers)]
        return f"Burda et al. 2015 (k=50: {PUBLISHED[('iwae50', layers)][1]})", None
    return PUBLISHED[("vae", layers)]


def training_budget(run_dir: Path, config: Config) -> tuple[int, float]:
    """(epochs, seconds) of training in the run's metrics, plus those of the runs it was started
    from (``--init-from``, followed back to a fresh start)."""
    metrics = read_metrics(run_dir)
    epochs, seconds = len(metrics), sum(record["seconds"] for record in metrics)
    if config.init_from:
        parent = Path(config.init_from)
        parent_epochs, parent_seconds = training_budget(parent, Config.load_json(parent / "config.json"))
        epochs, seconds = epochs + parent_epochs, seconds + parent_seconds
    return epochs, seconds


def saved_evaluation(run: Run, k: int) -> dict | None:
    """The run's saved ``evaluate-k{k}.json`` if it scored these very weights (seed 0, with FID),
    else None."""
    path = run.path / f"evaluate-k{k}.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    fits = (
        isinstance(saved, dict)
        and saved.get("k") == k
        and saved.get("seed") == 0
        and (saved.get("fid") is not None or "fid" in (saved.get("not_measured") or {}))
        and saved.get("weights_sha256") == weights_fingerprint(run.vae)
    )
    return saved if fits else None


def run_evaluation(run: Run, k: int, classifier=None, reuse: bool = True, echo=print) -> dict:
    """``evaluate(run, k)`` as a dict, read from the run's saved evaluation where it fits, else
    computed and saved there. A saved evaluation whose FID another judge gave (another classifier's
    sha256, or none recorded) has its judged figures alone measured again by ``classifier``."""
    path = run.path / f"evaluate-k{k}.json"
    saved = saved_evaluation(run, k) if reuse else None
    if saved is not None:
        judge = getattr(classifier, "sha256", None)
        if classifier is not None and saved.get("fid") is not None and saved.get("classifier_sha256") != judge:
            if echo is not None:
                echo(f"{run.path}: FID again with the classifier of sha256 {judge[:16]} (the bounds reused from {path})")
            saved = {**saved, **judged_figures(run, classifier)}
            path.write_text(json.dumps(saved) + "\n")
        elif echo is not None:
            echo(f"{run.path}: reusing {path} (same weights, k={k}, seed 0)")
        return saved
    result = {"run": str(run.path), **evaluate(run, k=k, classifier=classifier).to_dict()}
    path.write_text(json.dumps(result) + "\n")
    return result


def leaderboard_row(run_dir: str | Path, k: int, classifier=None, device: str = "auto", echo=print,
                    reuse: bool = True) -> dict:  # fmt: skip
    run = load_run(run_dir, device=device)
    result = run_evaluation(run, k, classifier, reuse=reuse, echo=echo)
    paper, paper_nll = published_figure(run.config)
    epochs, seconds = training_budget(Path(run_dir), run.config)
    metrics = run.metrics
    row = {
        "variant": variant_name(run.config),
        "run": str(run_dir),
        "command": _command(Path(run_dir), run.config),
        "epochs": epochs,
        "train_seconds": seconds,
        "network": run.config.network,
        "seconds_per_epoch": seconds / epochs if epochs else None,
        "device": (metrics[-1].get("device") if metrics else None) or "cpu",
        "k": k,
        "elbo": result["elbo"],
        "log_likelihood": result["log_likelihood"],
        "log_likelihood_se": result["log_likelihood_stderr"],
        "active_units": result["active_units"],
        "fid": result["fid"],
        "classifier_sha256": result.get("classifier_sha256"),
        "measures": measured_quantity(run.config),
        "fid_not_measured": (result.get("not_measured") or {}).get("fid"),
        "paper": paper,
        "paper_nll": paper_nll,
        "evaluate_seconds": result["seconds"],
        "bits_per_dim": result.get("bits_per_dim"),
        **{f"{codec}_bits_per_dim": result.get(f"{codec}_bits_per_dim") for codec in ("png", "webp")},
    }
    if echo is not None:
        echo(f"{row['variant']}: IWAE log p(x) {row['log_likelihood']:.2f} ± {row['log_likelihood_se']:.2f} nats, "
             f"{row['active_units']} active units, FID {row['fid'] if row['fid'] is None else round(row['fid'], 2)}")  # fmt: skip
    return row


def _command(run_dir: Path, config: Config) -> str:
    """The run's recorded command (commands.txt, first `pyro-vae train` line), else one rebuilt
    from its configuration."""
    recorded = run_dir / "commands.txt"
    if recorded.exists():
        for line in recorded.read_text().splitlines():
            if "pyro-vae train" in line:
                return line.lstrip("$ ").strip()
    return command_line(config, out=str(run_dir))


def comparable_groups(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows by what they measure (``measured_quantity``), each group best first; groups in the
    order of their first row."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row.get("measures") or "log p(x)", []).append(row)
    return {measures: sorted(group, key=lambda row: -row["log_likelihood"]) for measures, group in groups.items()}


def markdown_table(rows: list[dict]) -> str:
    lines, ordered, groups = [], [], comparable_groups(rows)
    for measures, group in groups.items():
        lines += [f"### {measures}", ""] if len(groups) > 1 else []
        lines += _group_table(group) + [""] + _codec_line(group)
        ordered += group
    judges = sorted({row["classifier_sha256"] for row in rows if row.get("classifier_sha256")})
    if judges:
        lines += [f"FID judged by the classifier of sha256 {', '.join(judges)}.", ""]
    lines += ["Commands:", ""] + [f"- {row['variant']}: `{row['command']}`" for row in ordered]
    return "\n".join(lines) + "\n"


def _codec_line(group: list[dict]) -> list[str]:
    """For 8-bit data: each row's bits/dim beside the lossless codecs' on the same test images."""
    coded = next((row for row in group if row.get("png_bits_per_dim") is not None), None)
    if coded is None:
        return []
    models = ", ".join(f"{row['variant']} {row['bits_per_dim']:.4f}" for row in group if row.get("bits_per_dim") is not None)
    return [f"Bits per dimension: {models}; the lossless codecs on the same test images, each image its own file: "
            f"PNG {coded['png_bits_per_dim']:.4f}, lossless WebP {coded['webp_bits_per_dim']:.4f}.", ""]  # fmt: skip


def _group_table(ordered: list[dict]) -> list[str]:
    lines = [
        "| variant | test NLL (nats, IWAE k) | ELBO | active units | FID | epochs | training | s/epoch | paper NLL |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in ordered:
        paper = f"{row['paper_nll']:.2f} ({row['paper']})" if row["paper_nll"] is not None else (row["paper"] or "")
        fid = "-" if row["fid"] is None else f"{row['fid']:.2f}"
        if row.get("fid_not_measured"):
            fid = f"not measured ({row['fid_not_measured']})"
        lines.append(
            f"| {row['variant']} | **{-row['log_likelihood']:.2f}** ± {row['log_likelihood_se']:.2f} (k={row['k']}) "
            f"| {row['elbo']:.2f} | {row['active_units']} | {fid} | {row['epochs']} "
            f"| {row['train_seconds'] / 60:.1f} min on {row['device']} | {_per_epoch(row)} | {paper} |"
        )
    return lines


def _per_epoch(row: dict) -> str:
    seconds = row.get("seconds_per_epoch") or (row["train_seconds"] / row["epochs"] if row["epochs"] else None)
    return "-" if seconds is None else f"{seconds:.1f}"


def write_leaderboard(rows: list[dict], out: Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "leaderboard.md").write_text(markdown_table(rows))
    from .plotting import leaderboard_figure

    leaderboard_figure(comparable_groups(rows), out / "leaderboard.png")
    return [out / "leaderboard.json", out / "leaderboard.md", out / "leaderboard.png"]


def command_line(config: Config, out: str | None = None) -> str:
    """The `pyro-vae train` command that makes ``config``: its flags for every field that differs
    from the default (where a run lives, data_dir, is left out)."""
    default, words = Config(), ["pyro-vae", "train"]
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value == getattr(default, field.name) or field.name == "data_dir" or field.metadata["derived"]:
            continue
        flag = field.metadata["flag"] or "--" + field.name.replace("_", "-")
        if field.metadata["kind"] is bool:
            words.append(flag if value else field.metadata["secondary"])
        else:
            words += [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return " ".join(words + (["--out", out] if out else []))
