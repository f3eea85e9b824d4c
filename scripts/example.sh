#!/usr/bin/env bash
# Set up unblur in .venv (if needed) and restore the bundled example:
#   examples/blurred.tif + examples/psf.tif -> out/restored.tif, out/restored.tif.compare.png, out/restored.tif.json
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
.venv/bin/unblur deconvolve examples/blurred.tif --psf examples/psf.tif --method rl --num-iter 200 --stop discrepancy \
    -o out/restored.tif --force
.venv/bin/python - <<'PY'
from unblur import read_image
from unblur.metrics import psnr, ssim
sharp, blurred, restored = (read_image(p) for p in ("examples/sharp.png", "examples/blurred.tif", "out/restored.tif"))
print(f"PSNR blurred {psnr(blurred, sharp):.2f} dB -> restored {psnr(restored, sharp):.2f} dB; "
      f"SSIM {ssim(blurred, sharp):.3f} -> {ssim(restored, sharp):.3f}")
PY
