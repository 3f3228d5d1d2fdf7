#!/usr/bin/env bash
# Set up (scripts/setup.sh), then open napari with the SegQC widgets (Segment with the built-in
# nuclei model, Quality control) and a sample image with its ground truth. Without a display,
# run `segqc demo` instead: the same loop headless, writing labels, the QC report and
# screenshots of the viewer into segqc_demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then
  exec .venv/bin/python -m napari_segqc "$@"
fi
echo "no display: running 'segqc demo --out segqc_demo' (screenshots under Xvfb)"
exec .venv/bin/segqc demo --out segqc_demo "$@"
