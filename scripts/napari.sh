#!/usr/bin/env bash
# Set up (scripts/setup.sh), then open napari with the SegQC widgets and a sample image, its
# ground truth and a classical segmentation to check. Without a display, run the same job
# headless under Xvfb and save a screenshot of the viewer instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then
  exec .venv/bin/python -m napari_segqc "$@"
fi
echo "no display: running headless under Xvfb, writing segqc_demo/"
exec xvfb-run -a .venv/bin/python -m napari_segqc --headless segqc_demo "$@"
