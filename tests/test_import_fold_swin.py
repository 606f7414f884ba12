"""Imported Swin Transformers fold into the Swin kinds: torchvision's SwinTransformer reads as
specs/swin_t.yaml does (timm's as the same lines with ``form: timm``), the stem's operators, a stage of swin_block per stage with the shift
alternating as the stage repeats it, patch_merging between stages, and the head's operators. The
folded spec states the module exactly (the flat import's totals, the module's parameters and
reference MACs, the YAML re-analysed without torch, the module rebuilt from it with the source's
weights computing the source's outputs).

The other ops of one block are worked out here statement by statement from torchvision's code
(``SwinTransformerBlock.forward`` and ``shifted_window_attention``), each by the counting
convention's per-element formula, and both the kind and the import must count exactly that."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from import_checks import assert_rebuilt_module_computes_the_same, assert_reanalysed_without_torch
from scalelab import analyze, load_spec
from scalelab.blocks import KINDS
from scalelab.blocks import layers as L
from scalelab.graph import resolve
from scalelab.importer import import_module
from scalelab.report import build_report
from scalelab.spec.model import Stage

ROOT = Path(__file__).resolve().parent.parent
#: a small torchvision Swin: 40 px in patches of 4 (10x10 tokens of 16, padded to 12x12 for windows
#: of 3), stages of 3 and 2 blocks (2 and 4 heads of 8), the second on 5x5 padded to 6x6
SMALL = {"patch_size": [4, 4], "embed_dim": 16, "depths": [3, 2], "num_heads": [2, 4], "window_size": [3, 3],
         "num_classes": 10}
SIZE = (3, 40, 40)


@pytest.fixture(scope="module")
def small():
    """(model, folded import, flat import) of the small Swin, imported once for this module."""
    from torchvision.models.swin_transformer import SwinTransformer

    torch.manual_seed(0)
    model = SwinTransformer(**SMALL).eval()
    return model, import_module(model, SIZE, name="small_swin"), import_module(model, SIZE, name="small_swin", fold=False)


def _totals(spec) -> tuple:
    total = analyze(spec).total
    return total.params, total.macs, total.ops, total.weight_ops


def _lines(spec) -> list[tuple]:
    """(kind, repeat) of each line of a spec: a stage by its block's kind."""
    return [(e.block.kind, e.repeat) if isinstance(e, Stage) else (e.kind, 1) for e in spec.blocks]


def _rows(spec) -> list[tuple]:
    """The ``--level 1`` rows: kind with repeats, output shape, parameters, MACs, other ops."""
    return [(r.kind, tuple(r.out_shape), r.values["params"], r.values["macs"], r.values["other_ops"])
            for r in build_report(analyze(spec), depth=1).rows]


LINES = [("conv", 1), ("permute", 1), ("layer_norm", 1), ("swin_block", 3), ("patch_merging", 1),
             ("swin_block", 2), ("layer_norm", 1), ("permute", 1), ("global_avgpool", 1), ("flatten", 1),
             ("linear", 1)]


def test_torchvisions_swin_folds_into_stages_of_swin_blocks(small, run_fresh, tmp_path, reference_macs):
    model, folded, flat = small
    assert _lines(folded.spec) == LINES
    first, second = folded.spec.blocks[3], folded.spec.blocks[5]
    for stage, heads in ((first, 2), (second, 4)):
        assert (stage.block.window, stage.block.shift, stage.block.heads_of(8 * heads)) == (3, "alternate", heads)
    shifts = {n: b.block.shift for n, b in resolve(folded.spec).blocks.items() if b.block.kind == "swin_block"}
    assert shifts == {"features.1.0": 0, "features.1.1": 1, "features.1.2": 0, "features.3.0": 0, "features.3.1": 1}
    params, macs = sum(p.numel() for p in model.parameters()), reference_macs(model, torch.zeros(1, *SIZE))
    assert _totals(folded.spec) == _totals(flat.spec)
    assert _totals(folded.spec)[:2] == (params, macs)
    assert_reanalysed_without_torch(folded, tmp_path, run_fresh, params, macs)
    assert_rebuilt_module_computes_the_same(folded, model, torch.randn(2, *SIZE))


def block_ops_by_hand(h: int, w: int, c: int, heads: int, window: int, shifted: bool, hidden: int) -> tuple[int, int]:
    """(other ops per sample, weight ops per pass) of one torchvision SwinTransformerBlock on an h x w
    map of c channels, statement by statement. Per element: a copy, an add, a scaling, a compare, a
    fill or a linear's bias 1; layer norm 5; GELU 5 (x (1 + erf(x / sqrt 2)) / 2); softmax 5 a score.
    torch.matmul's own layout copies of its operands are no ops (the convention of matmul)."""
    hp, wp = -(-h // window) * window, -(-w // window) * window
    t, tp, n = h * w, hp * wp, window * window
    windows, across = tp // n, wp // window > 1 and window > 1  # a partition's reshape copies unless a view
    scores = windows * heads * n * n
    attention = (tp * c                                # F.pad (a copy, padding or not)
                 + tp * c * shifted                    # torch.roll by -shift
                 + tp * c * across                     # the window partition's reshape after permute
                 + tp * 3 * c                          # the qkv linear's bias
                 + tp * c                              # q * head_dim ** -0.5
                 + scores                              # + relative_position_bias
                 + scores * shifted                    # + attn_mask
                 + 5 * scores                          # softmax
                 + tp * c * (heads > 1)                # .transpose(1, 2).reshape(...): the heads back
                 + tp * c                              # the proj linear's bias
                 + tp * c * across                     # the window reverse's reshape after permute
                 + tp * c * shifted                    # torch.roll back
                 + t * c * (tp > t))                   # x[:, :H, :W, :].contiguous() after padding
    block = 5 * t * c + attention + t * c + 5 * t * c + t * hidden + 5 * t * hidden + t * c + t * c
    bias = 2 * heads * n * n                           # the table's gather, and its permute's copy
    mask = (3 * windows * n + 5 * windows * n * n) * shifted  # zeros, 9 fills, copy; sub, ne, fill, eq, fill
    return block, bias + mask


def _kind_figures(shape, shift: int, head_dim: int) -> tuple[int, int]:
    block = KINDS["swin_block"].model_validate({"kind": "swin_block", "window": 3, "shift": shift, "head_dim": head_dim})
    costs = L.walk(block.layers(shape), shape).costs
    return sum(c.ops for c in costs), sum(c.weight_ops for c in costs)


def _imported_figures(flat, prefix: str) -> tuple[int, int]:
    blocks = [b for b in analyze(flat.spec).blocks if b.name.startswith(prefix + ".")]
    return sum(b.cost.ops for b in blocks), sum(b.cost.weight_ops for b in blocks)


@pytest.mark.parametrize("prefix, shape, heads, shifted", [
    ("features.1.0", (10, 10, 16), 2, False), ("features.1.1", (10, 10, 16), 2, True),
    ("features.3.0", (5, 5, 32), 4, False), ("features.3.1", (5, 5, 32), 4, True),
    (None, (3, 3, 32), 4, False),  # one window: the partition's reshapes are views (the import: test below)
])
def test_a_blocks_other_ops_are_torchvisions_statements_for_the_kind_and_the_import(small, prefix, shape, heads,
                                                                                    shifted):
    h, w, c = shape
    expected = block_ops_by_hand(h, w, c, heads, 3, shifted, 4 * c)
    assert _kind_figures(shape, 1 if shifted else 0, 8) == expected
    if prefix is not None:
        assert _imported_figures(small[2], prefix) == expected
    if prefix == "features.1.1":  # the figures written out once: 10x10 of 16 padded to 12x12, 16 windows of 9
        assert expected == (104_288, 2 * 2 * 81 + 3 * 16 * 9 + 5 * 16 * 81)


@pytest.mark.slow
def test_torchvisions_swin_t_imports_as_the_zoo_spec(reference_macs):
    """torchvision's swin_t at 224 folds into specs/swin_t.yaml's lines and level-1 rows (kinds,
    shapes, parameters, MACs and other ops) up to its last stage, and has the zoo spec's totals. The
    last stage's 7x7 map is one window: torch merges that window with the batch, so the import's
    blocks there have no windows axis where swin_block states one of size 1, and they stay as imported."""
    import torchvision

    model = torchvision.models.swin_t(weights=None).eval()
    imported = import_module(model, (3, 224, 224), name="swin_t")
    zoo = load_spec(ROOT / "specs" / "swin_t.yaml")
    assert _lines(imported.spec)[:9] == _lines(zoo)[:9]
    assert _rows(imported.spec)[:9] == _rows(zoo)[:9]
    assert "swin_block" not in [kind for kind, _ in _lines(imported.spec)[9:]]
    assert _totals(imported.spec) == _totals(zoo)
    assert _totals(zoo)[:2] == (sum(p.numel() for p in model.parameters()), reference_macs(model, torch.zeros(1, 3, 224, 224)))


#: a small timm Swin: 40 px in patches of 4 (10x10 tokens of 16, padded to 12x12 for windows of 3 after
#: the roll), stages of 2 blocks (2 and 4 heads of 8), the second on 5x5 padded to 6x6
TIMM = {"embed_dim": 16, "depths": (2, 2), "num_heads": (2, 4), "window_size": 3, "img_size": 40, "num_classes": 10}
TIMM_LINES = [("conv", 1), ("permute", 1), ("layer_norm", 1), ("swin_block", 2), ("patch_merging", 1),
              ("swin_block", 2), ("layer_norm", 1), ("reduce", 1), ("linear", 1)]


@pytest.fixture(scope="module")
def timm_small():
    """(model, folded import, flat import) of the small timm Swin."""
    timm = pytest.importorskip("timm")

    torch.manual_seed(0)
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, **TIMM).eval()
    return model, import_module(model, SIZE, name="timm_swin"), import_module(model, SIZE, name="timm_swin", fold=False)


@pytest.mark.slow
def test_timms_swin_folds_into_stages_of_swin_blocks_of_its_form(timm_small, run_fresh, tmp_path, reference_macs):
    """timm's blocks roll before padding, keep the mask as a buffer and run the MLP on flattened
    tokens: they fold into swin_block with form: timm, its PatchMerging (a view into 2x2 neighbours
    and a copy) into patch_merging, the head (timm's mean over the map, then fc) stays as imported."""
    model, folded, flat = timm_small
    assert _lines(folded.spec) == TIMM_LINES
    for stage, heads in ((folded.spec.blocks[3], 2), (folded.spec.blocks[5], 4)):
        assert (stage.block.form, stage.block.window, stage.block.shift, stage.block.heads_of(8 * heads)) == (
            "timm", 3, "alternate", heads)
    params, macs = sum(p.numel() for p in model.parameters()), reference_macs(model, torch.zeros(1, *SIZE))
    assert _totals(folded.spec) == _totals(flat.spec)
    assert _totals(folded.spec)[:2] == (params, macs)
    assert_reanalysed_without_torch(folded, tmp_path, run_fresh, params, macs)
    assert_rebuilt_module_computes_the_same(folded, model, torch.randn(2, *SIZE))


@pytest.mark.slow
@pytest.mark.parametrize("prefix, shape, heads, shifted", [
    ("layers.0.blocks.0", (10, 10, 16), 2, False), ("layers.0.blocks.1", (10, 10, 16), 2, True),
    ("layers.1.blocks.0", (5, 5, 32), 4, False), ("layers.1.blocks.1", (5, 5, 32), 4, True),
])
def test_a_timm_blocks_other_ops_are_timms_statements_for_the_import(timm_small, prefix, shape, heads, shifted):
    """The flat import of each block counts what timm's statements compute (tests/test_swin_timm.py works
    them out and checks the kind against them)."""
    from test_swin_timm import timm_block_ops_by_hand

    h, w, c = shape
    assert _imported_figures(timm_small[2], prefix) == timm_block_ops_by_hand(h, w, c, heads, 3, shifted, 4 * c)
