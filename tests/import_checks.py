"""What every imported test model must satisfy beyond its totals: the written YAML, analysed again in
a process that never imports torch, gives the same totals and block shapes; the module built from
that YAML, loaded with the source module's state dict, gives the source's outputs."""

from __future__ import annotations

import json

import torch

ANALYSE = """
import json
from scalelab import analyze, load_spec
a = analyze(load_spec({path!r}))
print(json.dumps({{"params": a.total.params + a.training_only_total.params, "macs": a.total.macs,
                  "shapes": {{b.name: list(b.out_shape) for b in a.blocks}}}}))
"""


def assert_reanalysed_without_torch(imported, tmp_path, run_fresh, params: int, macs: int) -> None:
    """The YAML alone, in a fresh process without torch, states the module's figures and shapes."""
    path = tmp_path / "imported.yaml"
    path.write_text(imported.text)
    stdout, heavy = run_fresh(ANALYSE.format(path=str(path)))
    assert heavy == []
    figures = json.loads(stdout.strip().splitlines()[-1])
    assert (figures["params"], figures["macs"]) == (params, macs)
    assert {n: tuple(s) for n, s in figures["shapes"].items() if n in imported.shapes} == imported.shapes


def assert_rebuilt_module_computes_the_same(imported, model, x, atol: float = 1e-4) -> None:
    """build_module(spec) with the source's weights: outputs equal the source's in eval mode."""
    from scalelab.build import build_module

    built = build_module(imported.spec).eval()
    keys = list(built.state_dict())
    assert len(imported.state_keys) == len(keys)
    source = model.state_dict()
    shapes = {k: t.shape for k, t in built.state_dict().items()}  # a param block holds the view its operation reads
    built.load_state_dict({k: source[s].reshape(shapes[k]) for k, s in zip(keys, imported.state_keys) if s is not None},
                          strict=False)
    missing = [k for k, s in zip(keys, imported.state_keys) if s is None]
    assert all(k.endswith("num_batches_tracked") for k in missing), missing
    with torch.no_grad():
        expected, got = model.eval()(x), built(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=atol, rtol=1e-4)
