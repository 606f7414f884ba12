"""Imports refused in the user's terms: one ``error:`` line (exit 2, no traceback, nothing of torch's
on stderr) for a module whose forward gives nothing to import (its input unchanged, None, a number,
a tensor that never reads the input, a copy of the input) and for one torch.export cannot capture
(a branch on a tensor's values, named by its line in the module's file). What the module or torch
warned before a refusal is shown first, as ``note:`` lines. A torchvision Swin that keeps its position
index out of its state dict imports, and one that names its index otherwise is refused by name."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from torch import nn

from cli_helpers import assert_refused, invoke
from scalelab.errors import ScalelabError
from scalelab.importer import import_module

#: modules a user might hand over by mistake; each class's forward is the whole story
NETS = textwrap.dedent("""
    import warnings

    import torch
    from torch import nn


    class WithConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)


    class Unchanged(WithConv):
        def forward(self, x):
            return x


    class Nothing(WithConv):
        def forward(self, x):
            self.conv(x)


    class Number(WithConv):
        def forward(self, x):
            return 3


    class Weight(WithConv):
        def forward(self, x):
            return self.conv.weight * 2


    class Copied(WithConv):
        def forward(self, x):
            return x.clone()


    class Branchy(WithConv):
        def forward(self, x):
            x = self.conv(x)
            if x.sum() > 0:
                return x * 2
            return x


    class Warns(WithConv):
        def forward(self, x):
            warnings.warn("the stem runs at half width", UserWarning)
            warnings.warn("this argument is deprecated", DeprecationWarning)
            x = self.conv(x)
            if x.sum() > 0:
                return x * 2
            return x


    def built_warning():
        warnings.warn("built without pretrained weights", UserWarning)
        return Warns()


    def empty_sequential():
        return nn.Sequential()
""")


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(NETS)
    return path


def _refused_alone(result, *fragments) -> str:
    """The refusal is one error line and nothing else (no graph, no log line, no warning)."""
    assert_refused(result, *fragments)
    assert len(result.output.splitlines()) == 1 and result.output.startswith("error: "), result.output
    return result.output


@pytest.mark.parametrize("name, says", [
    ("Unchanged", "its forward returns its input unchanged: there is nothing to import"),
    ("empty_sequential", "its forward returns its input unchanged: there is nothing to import"),
    ("Nothing", "its forward returns None, not a tensor: there is nothing to import"),
    ("Number", "its forward returns 3, not a tensor: there is nothing to import"),
    ("Weight", "its forward's output is computed without reading its input"),
    ("Copied", "its forward only reshapes or copies its input, computing nothing"),
])
def test_a_forward_with_nothing_to_import_is_refused_in_its_own_terms(nets, tmp_path, name, says):
    out = tmp_path / "spec.yaml"
    output = _refused_alone(invoke("import", f"{nets}:{name}", "--input", "3x8x8", "-o", out), f"{nets}:{name}: {says}")
    assert "blocks:" not in output and "<" not in output  # nothing of the spec the import would have made
    assert not out.exists()


def test_the_api_refuses_an_identity_module_too():
    with pytest.raises(ScalelabError, match=r"^identity: its forward returns its input unchanged"):
        import_module(nn.Identity(), (3, 8, 8), name="identity")


def test_a_branch_on_a_tensors_values_is_named_by_its_line_and_torchs_dump_stays_out(nets):
    line = NETS.splitlines().index("        if x.sum() > 0:") + 1  # the first one: Branchy's
    output = _refused_alone(invoke("import", f"{nets}:Branchy", "--input", "3x8x8"),
                            "torch.export cannot capture this module at 3x8x8",
                            f"its code branches on the values of a tensor at {nets}:{line} (`if x.sum() > 0:`)")
    assert "def forward" not in output and "GuardOnDataDependentSymNode" not in output


def test_what_the_module_warned_before_a_refusal_comes_first_as_notes(nets):
    result = invoke("import", f"{nets}:built_warning", "--input", "3x8x8")
    assert_refused(result, "its code branches on the values of a tensor")
    ref = f"{nets}:built_warning"
    # building warns before capturing does; the deprecation notice is dropped, as on a successful import
    assert result.output.splitlines() == [
        f"note: {ref}: warned while it was built and captured: built without pretrained weights",
        f"note: {ref}: warned while it was built and captured: the stem runs at half width",
        result.output.splitlines()[-1],
    ], result.output
    assert result.output.splitlines()[-1].startswith(f"error: {ref}: torch.export cannot capture")


def test_a_refusal_carries_the_notes_and_lets_no_warning_out():
    class Warns(nn.Module):
        def forward(self, x):
            warnings.warn("the stem runs at half width", UserWarning)
            return x

    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        with pytest.raises(ScalelabError, match="returns its input unchanged") as refused:
            import_module(Warns(), (3, 8, 8), name="warns")
    assert escaped == []
    assert refused.value.__notes__ == ["warns: warned while it was built and captured: the stem runs at half width"]


@pytest.mark.slow  # a fresh interpreter importing torch
def test_a_fresh_interpreters_stderr_holds_the_one_error_line(nets):
    result = subprocess.run([sys.executable, "-m", "scalelab", "import", f"{nets}:Branchy", "--input", "3x8x8"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr


#: a small torchvision Swin (24 px in patches of 4: 6x6 tokens of 16, one stage of 2 blocks in
#: windows of 3) whose position index is made a buffer out of the state dict (``KEPT``) or renamed
SWIN = textwrap.dedent("""
    import types

    import torch
    from torchvision.models.swin_transformer import SwinTransformer, _get_relative_position_bias

    SMALL = {"patch_size": [4, 4], "embed_dim": 16, "depths": [2], "num_heads": [2], "window_size": [3, 3],
             "num_classes": 10}
    INDEX = "relative_position_index"


    def not_kept():
        torch.manual_seed(0)
        model = SwinTransformer(**SMALL)
        for module in model.modules():
            if INDEX in module._buffers:
                module._non_persistent_buffers_set.add(INDEX)
        return model


    def _bias(self):
        return _get_relative_position_bias(self.relative_position_bias_table, self.index, self.window_size)


    def renamed():
        torch.manual_seed(0)
        model = SwinTransformer(**SMALL)
        for module in model.modules():
            if INDEX in module._buffers:
                module.register_buffer("index", module._buffers.pop(INDEX))
                module.get_relative_position_bias = types.MethodType(_bias, module)
        return model
""")


@pytest.fixture
def swin(tmp_path):
    pytest.importorskip("torchvision")
    path = tmp_path / "swin.py"
    path.write_text(SWIN)
    space: dict = {}
    exec(SWIN, space)  # the very modules the CLI imports from the file
    return path, space


def test_a_swin_whose_index_is_kept_out_of_its_state_dict_imports_and_rebuilds(swin, tmp_path):
    from scalelab.build import build_module

    path, space = swin
    model = space["not_kept"]().eval()
    assert not any(k.endswith("relative_position_index") for k in model.state_dict())  # out of it
    result = invoke("import", f"{path}:not_kept", "--input", "3x24x24", "-o", tmp_path / "swin.yaml")
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.output.splitlines()] == ["wrote", "imported"], result.output
    imported = import_module(model, (3, 24, 24), name="not_kept")
    assert "swin_block" in imported.text  # folded, holding the index as its own buffer
    built = build_module(imported.spec).eval()
    keys, source = list(built.state_dict()), model.state_dict()
    missing = [k for k, s in zip(keys, imported.state_keys, strict=True) if s is None]
    assert missing and all(k.endswith("relative_position_index") for k in missing), missing
    built.load_state_dict({k: source[s] for k, s in zip(keys, imported.state_keys) if s is not None}, strict=False)
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(built(x), model(x), atol=1e-5, rtol=1e-4)


def test_a_swin_whose_index_is_named_otherwise_is_refused_by_name(swin):
    path, _ = swin
    _refused_alone(invoke("import", f"{path}:renamed", "--input", "3x24x24"),
                   "the source has no tensor features.1.0.attn.relative_position_index")
