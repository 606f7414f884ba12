#!/usr/bin/env bash
# Regenerate every file in reports/ from the specs, with the commands listed in reports/README.md.
# Run from anywhere; set SCALELAB to use another executable (default: `scalelab` on the PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
SCALELAB=${SCALELAB:-scalelab}

# Per-block analysis reports (Markdown, HTML)
$SCALELAB analyze resnet50 --format markdown -o reports/resnet50.md
$SCALELAB analyze efficientnet_b0 --device t4 --dtype fp16 --batch 8 --format markdown \
    -o reports/efficientnet_b0-t4-fp16-batch8.md
$SCALELAB analyze mobilenet_v2 --mode train --optimizer adam --batch 32 --format markdown \
    -o reports/mobilenet_v2-train-adam-batch32.md
$SCALELAB analyze googlenet --format markdown -o reports/googlenet.md
$SCALELAB analyze resnet50 -o reports/resnet50.html

# Per-block breakdown charts
$SCALELAB plot resnet50 --breakdown all -o reports/resnet50-breakdown.png
$SCALELAB plot efficientnet_b0 --breakdown all --device t4 -o reports/efficientnet_b0-breakdown-t4.png

# Scaling searches (report, winning spec, charts). A stored study resumes instead of starting over,
# so start from a fresh storage to reproduce the same trials.
rm -f reports/studies.db
$SCALELAB scale --budget 400MFLOPs --report-dir reports --no-progress
$SCALELAB scale --budget 400MFLOPs --method direct --report-dir reports --no-progress
