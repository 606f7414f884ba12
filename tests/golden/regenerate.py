"""Regenerate tests/golden/zoo.json: params, MACs, other ops and activations of every zoo spec at its
own input resolution, batch 1 (inference totals, and the training-only heads apart).

Run it only on purpose (`python tests/golden/regenerate.py`) after a reviewed change to a
formula or a spec; the diff of zoo.json is the review. tests/test_zoo.py checks the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GOLDEN = Path(__file__).with_name("zoo.json")


def figures(name: str) -> dict:
    from scalelab.analysis import analyze

    result = analyze(name)
    row = {
        "input": list(result.input_shape),
        "params": result.total.params,
        "macs": result.total.macs,
        "ops": result.total.ops,
        "activations": result.total.activations,
    }
    extra = result.training_only_total
    if any(b.training_only for b in result.blocks):
        row["training_only"] = {"params": extra.params, "macs": extra.macs, "ops": extra.ops,
                                "activations": extra.activations}
    return row


def current() -> dict:
    from scalelab.spec import zoo_names

    return {name: figures(name) for name in zoo_names()}


def main() -> int:
    rows = current()
    # one spec per line, so that a change shows up as a one-line diff per network
    lines = [f"  {json.dumps(name)}: {json.dumps(row)}" for name, row in rows.items()]
    GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main())
