#!/usr/bin/env bash
# The runs behind README's gallery and results/{default-cvae,fashion-cvae,vae-z2}/, and the figures
# of results/default-vae/. Every command is the public CLI; run from the repository root with the
# venv active and PYRO_VAE_DATA set (about 10 minutes on 2 CPU cores).
#
#     bash bench/gallery.sh
set -euo pipefail

log() { echo "\$ $*" >>"$out/commands.txt"; "$@" 2>&1 | tee -a "$out/train.log"; }

# The default conditional VAE: 10 epochs, its figures, one sample grid per digit, its evaluation.
out=results/default-cvae; rm -rf "$out"; mkdir -p "$out"
log pyro-vae train --conditional --epochs 10 --device cpu --quiet --out "$out"
for digit in 0 1 2 3 4 5 6 7 8 9; do
    log pyro-vae sample --run "$out" --digit "$digit" --n 64 --out "$out/digit-$digit.png"
done
echo "\$ pyro-vae evaluate $out --k 1000 --device cpu --json > $out/evaluate-k1000.json" >>"$out/commands.txt"
pyro-vae evaluate "$out" --k 1000 --device cpu --json >"$out/evaluate-k1000.json"

# Fashion-MNIST, conditional: its figures and one row of samples per class.
out=results/fashion-cvae; rm -rf "$out"; mkdir -p "$out"
log pyro-vae train --dataset fashion-mnist --conditional --epochs 10 --device cpu --quiet --out "$out"
log pyro-vae sample --run "$out" --n 100 --out "$out/samples.png"

# A 2-D latent, for the latent space itself and the decoded manifold.
out=results/vae-z2; rm -rf "$out"; mkdir -p "$out"
log pyro-vae train --z-dim 2 --epochs 10 --device cpu --quiet --out "$out"

# The reported default VAE (180 epochs, committed checkpoint): its figures and samples.
out=results/default-vae
echo "\$ pyro-vae plot $out --device cpu" >"$out/figures-commands.txt"
pyro-vae plot "$out" --device cpu
echo "\$ pyro-vae sample --run $out --n 100 --out $out/samples.png" >>"$out/figures-commands.txt"
pyro-vae sample --run "$out" --n 100 --out "$out/samples.png"
