#!/usr/bin/env bash
# Build the site and photograph pages as a reader's browser shows them (Debian's chromium,
# headless): `mkdocs build --strict` checks links, not layout. Usage: bash docs/screenshot.sh
# [PAGE ...] (default: the results page); the PNGs land in ${OUT:-/tmp/pyro-vae-screenshots}.
set -euo pipefail
cd "$(dirname "$0")/.."
site="$(mktemp -d)/site" out="${OUT:-/tmp/pyro-vae-screenshots}"
command -v chromium >/dev/null || { echo "needs Debian's chromium: apt-get install chromium" >&2; exit 2; }
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$site"
mkdir -p "$out"
for page in "${@:-guide/results}"; do
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1600,3000 \
        --screenshot="$out/${page//\//-}.png" "file://$site/$page/index.html" 2>/dev/null
    echo "$out/${page//\//-}.png"
done
