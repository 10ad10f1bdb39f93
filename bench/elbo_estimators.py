"""The two ELBO estimators on one trained model: the test ELBO by Trace_ELBO's estimate (log w = log
p(x, z) - log q(z | x) at the guide's draws) and by TraceMeanField_ELBO's (log p(x | z_1) at the draws
minus each group's KL(q(z_l | z_>l, x) || p(z_l | z_>l)) in closed form given the draws above), per
test image averaged over --particles draws, their means over the test images with standard errors,
and the paired difference. Both estimate the same bound, so the difference must be within its error.

    PYRO_VAE_DATA=../shared/data python bench/elbo_estimators.py results/depth-elbos/analytic --particles 10
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample

from common import machine, write_record  # a script beside this one
from pyro_vae.data import load_data
from pyro_vae.runs import load_run


@torch.no_grad()
def per_image_estimates(vae, x: torch.Tensor, particles: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Trace_ELBO's, TraceMeanField_ELBO's) estimate per image, each the mean over the particles."""
    with pyro.plate("particles", particles, dim=-2):
        guide = poutine.trace(vae.guide).get_trace(x)
        model = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(x)
    reconstruction = model.nodes["x"]["fn"].log_prob(x)
    trace, analytic = reconstruction.clone(), reconstruction.clone()
    for name, site in guide.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        prior = model.nodes[name]["fn"]
        trace += prior.log_prob(site["value"]) - site["fn"].log_prob(site["value"])
        analytic -= torch.distributions.kl_divergence(site["fn"], prior)
    return trace.mean(0), analytic.mean(0)


def mean_and_error(values: torch.Tensor) -> tuple[float, float]:
    return values.mean().item(), values.std().item() / math.sqrt(len(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--particles", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    started = time.perf_counter()
    run = load_run(args.run, device=args.device)
    test = load_data(run.config, run.device).test  # binarized once, with the evaluator's fixed seed
    pyro.set_rng_seed(0)
    estimates = [per_image_estimates(run.vae, x, args.particles) for x, _ in test.chunks(500)]
    trace, analytic = (torch.cat(parts) for parts in zip(*estimates))
    figures = {name: mean_and_error(values) for name, values in
               (("trace", trace), ("analytic", analytic), ("analytic_minus_trace", analytic - trace))}  # fmt: skip
    for name, (mean, error) in figures.items():
        print(f"{name}: {mean:.3f} +- {error:.3f} nats per image")
    write_record("elbo-estimators", args.device, {"machine": machine(args.device), "command": " ".join(sys.argv),
                                                  "run": args.run, "particles": args.particles, "images": len(trace),
                                                  "figures": figures, "seconds": time.perf_counter() - started})  # fmt: skip


if __name__ == "__main__":
    main()
