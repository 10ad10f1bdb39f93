"""Colour photographs, modelled 8 bits per subpixel: 32x32 patches cut from the colour photographs that
scikit-image ships in its package (nothing is downloaded), held out by photograph, a conv VAE with the
discretized logistic trained on them, and its bits per dimension on the test photographs' patches
against two baselines computed here on the same patches:

- uniform: every level 1/256, 8 bits per dimension;
- per pixel: each of the 32*32*3 subpixel positions an independent categorical over the 256 levels,
  fitted to the training patches by counting (add-one smoothing, so no test level has probability 0).

    pip install -e '.[photos]'        # scikit-image, for its photographs
    python results/photo-patches/make.py --epochs 40 --device cpu

Steps: data/patches.npz (train and test patches, not committed: remade exactly on every call) and
photographs.json (patches per photograph); run/ (pyro-vae train with a validation split, skipped
when run/checkpoint.pt exists: delete it to retrain); evaluate.json (pyro-vae evaluate); the figures
(samples.png here, reconstructions and interpolations in run/); patches.json with the figures and
the commands that made them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIZE = 32
# Held out by photograph: no patch of a test photograph is seen in training or validation. The two
# views of the stereo motorcycle show one scene, so both are on the training side.
TRAIN_PHOTOS = ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "motorcycle_left",
                "motorcycle_right")  # fmt: skip
TEST_PHOTOS = ("chelsea", "coffee")
TRAIN_STRIDE, TEST_STRIDE = 16, 32  # overlapping training patches; disjoint test patches
MAX_PER_PHOTOGRAPH = 2000  # evenly spaced, so the large retina and Hubble photographs don't dominate


def photographs(names) -> dict[str, np.ndarray]:
    """The named colour photographs (H, W, 3) uint8 from skimage.data, read from the package."""
    try:
        from skimage import data
    except ImportError:
        sys.exit("scikit-image is not installed: pip install -e '.[photos]'")
    left, right, _ = data.stereo_motorcycle()
    special = {"motorcycle_left": left, "motorcycle_right": right}
    return {name: np.asarray(special[name] if name in special else getattr(data, name)())[..., :3] for name in names}


def cut(photo: np.ndarray, stride: int, limit: int | None = None) -> np.ndarray:
    """Every SIZE x SIZE patch whose corner is on the stride grid, (n, SIZE, SIZE, 3); at most
    ``limit`` of them, evenly spaced in that order."""
    rows, columns = photo.shape[:2]
    patches = np.stack([photo[top : top + SIZE, left : left + SIZE]
                        for top in range(0, rows - SIZE + 1, stride)
                        for left in range(0, columns - SIZE + 1, stride)])  # fmt: skip
    if limit is not None and len(patches) > limit:
        patches = patches[np.linspace(0, len(patches) - 1, limit).round().astype(int)]
    return patches


def make_patches(path: Path) -> dict:
    train = {name: cut(photo, TRAIN_STRIDE, MAX_PER_PHOTOGRAPH) for name, photo in photographs(TRAIN_PHOTOS).items()}
    test = {name: cut(photo, TEST_STRIDE) for name, photo in photographs(TEST_PHOTOS).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=np.concatenate(list(train.values())), test_images=np.concatenate(list(test.values())))
    return {"train_patches_per_photograph": {n: len(p) for n, p in train.items()},
            "test_patches_per_photograph": {n: len(p) for n, p in test.items()}}  # fmt: skip


def per_pixel_bits(train: np.ndarray, test: np.ndarray) -> float:
    """Bits per dimension of the test patches under independent per-position categoricals,
    p(level) = (count + 1) / (N + 256) from the training patches."""
    flat_train, flat_test = train.reshape(len(train), -1), test.reshape(len(test), -1)
    positions = flat_train.shape[1]
    counts = np.zeros((positions, 256), dtype=np.int64)
    np.add.at(counts, (np.broadcast_to(np.arange(positions), flat_train.shape), flat_train), 1)
    log_p = np.log2(counts + 1) - np.log2(len(train) + 256)
    return float(-log_p[np.arange(positions), flat_test].mean())


def run(command: list[str]) -> str:
    print("+", shlex.join(command), flush=True)
    return subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--mixture", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--validation", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100, help="IWAE draws per test patch")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data, run_dir = HERE / "data" / "patches.npz", HERE / "run"
    pyro_vae = str(Path(sys.executable).with_name("pyro-vae"))
    relative = lambda path: str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)  # noqa: E731
    counts = make_patches(data)  # under a second, and the same bytes each time
    (HERE / "photographs.json").write_text(json.dumps(counts, indent=1) + "\n")
    archive = np.load(data)
    train, test = archive["images"], archive["test_images"]
    baseline = per_pixel_bits(train, test)
    print(f"{len(train)} training and {len(test)} test patches; per-pixel baseline {baseline:.4f} bits/dim")
    train_command = [pyro_vae, "train", "--dataset", relative(data), "--network", "conv", "--likelihood",
                     "discretized-logistic", "--mixture", str(args.mixture), "--epochs", str(args.epochs),
                     "--lr", str(args.lr), "--validation", str(args.validation), "--device", args.device,
                     "--quiet", "--out", relative(run_dir)]  # fmt: skip
    if not (run_dir / "checkpoint.pt").exists():
        (HERE / "train.log").write_text(run(train_command))
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evaluate_command = [pyro_vae, "evaluate", relative(run_dir), "--k", str(args.k), "--json", "--device", args.device]
    evaluation = json.loads(run(evaluate_command))
    (HERE / "evaluate.json").write_text(json.dumps(evaluation, indent=1) + "\n")
    sample_command = [pyro_vae, "sample", "--run", relative(run_dir), "--n", "64", "--out", relative(HERE / "samples.png")]
    run(sample_command)
    plot_command = [pyro_vae, "plot", relative(run_dir), "--device", args.device]
    run(plot_command)
    record = {
        "bits_per_dim": evaluation["bits_per_dim"],
        "baseline_per_pixel_bits_per_dim": baseline,
        "baseline_uniform_bits_per_dim": 8.0,
        "below_per_pixel_by": baseline - evaluation["bits_per_dim"],
        "test_images": len(test),
        "train_images": len(train) - args.validation,
        "validation_images": args.validation,
        "train_photographs": list(TRAIN_PHOTOS),
        "test_photographs": list(TEST_PHOTOS),
        "elbo_bits_per_dim": -evaluation["elbo"] / (SIZE * SIZE * 3 * math.log(2)),
        "k": args.k,
        "command": " ".join(["python", relative(Path(__file__).resolve()), *sys.argv[1:]]),
        "commands": [shlex.join(["pyro-vae", *c[1:]]) for c in (train_command, evaluate_command, sample_command,
                                                                 plot_command)],  # fmt: skip
        "train_seconds": sum(record["seconds"] for record in metrics),
        "epochs": len(metrics),
        "machine": metrics[0].get("device", "unknown"),  # where it trained
        "evaluated_on": f"{_cpu_name()}, {os.cpu_count()} cores ({platform.machine()})",
    }
    record.update({f"{codec}_bits_per_dim": evaluation[f"{codec}_bits_per_dim"] for codec in ("png", "webp")})
    record["per_patch_figure"] = per_patch_figure(run_dir, test, args.k, HERE / "per-patch.png")
    (HERE / "patches.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


def per_patch_figure(run_dir: Path, test: np.ndarray, k: int, path: Path) -> dict:
    """Each test patch's bits/dim under the model (IWAE, k draws: ``run.score``) against its PNG's
    and its lossless WebP's (the file of that one patch, headers included), as a scatter plot; and
    the share of patches the model codes in fewer bits than each codec."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pyro_vae import load_run
    from pyro_vae.codecs import codec_bits

    run = load_run(run_dir, device="cpu")
    model = run.score(test, k=k, scores=("nll",))["bits_per_dim"]
    flat = torch_images(test)
    codecs = {codec: codec_bits(flat, (3, SIZE, SIZE), codec) / (3 * SIZE * SIZE) for codec in ("png", "webp")}
    figure, axis = plt.subplots(figsize=(4.8, 4.5))
    for codec, bits in codecs.items():
        axis.scatter(bits, model, s=6, alpha=0.6, label=f"{codec.upper()} (model smaller on {np.mean(model < bits):.0%})")
    low, high = min(model.min(), *(b.min() for b in codecs.values())), max(model.max(), *(b.max() for b in codecs.values()))
    axis.plot([low, high], [low, high], color="grey", linewidth=0.8)
    axis.set_xlabel("codec, bits per dimension (the patch's own file)")
    axis.set_ylabel("model, bits per dimension (IWAE)")
    axis.set_title(f"{len(test)} held-out patches", fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return {"file": path.name, **{f"model_below_{codec}_share": float(np.mean(model < bits)) for codec, bits in codecs.items()}}


def torch_images(patches: np.ndarray):
    """(n, 32, 32, 3) uint8 -> (n, 3*32*32) uint8 tensor, channels first, as a split stores them."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(patches.transpose(0, 3, 1, 2))).reshape(len(patches), -1)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
