#!/usr/bin/env bash
# docs/images/verdicts.png, the picture README.md shows: the quickstart sweep run in a scratch
# directory, its report written, and the report's "one example of each verdict" figure saved
# with a 64-colour palette (small enough for git). `make docs-image` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
"$root/.venv/bin/hpsearch" sweep "$root/sweeps/quickstart.yaml" --tracking-uri "sqlite:///$scratch/mlruns/mlflow.db" > /dev/null
"$root/.venv/bin/hpsearch" report quickstart > /dev/null
mkdir -p "$root/docs/images"
"$root/.venv/bin/python" - "$scratch/reports/quickstart/curves_verdicts.png" "$root/docs/images/verdicts.png" <<'PY'
import sys
from PIL import Image
Image.open(sys.argv[1]).convert("RGB").quantize(64).save(sys.argv[2], optimize=True)
PY
echo "docs/images/verdicts.png: $(stat -c %s "$root/docs/images/verdicts.png") bytes"
