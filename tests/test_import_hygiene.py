"""What a user meets at import beyond the figures: stderr holds scalelab's lines only (torch's warnings
are recorded during capture, dropped or turned into one note), a module run inside a grad-mode or
autocast region keeps its qualified name, and a relative position bias counts the gather the eval
model runs on every pass: none where the module keeps the gathered bias after its first pass
(timm's ``attention_bias_cache``), as a capture of that model after one pass shows."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from torch import nn

from scalelab import analyze
from scalelab.importer import import_module
from scalelab.importer.capture import torch_warnings

timm = pytest.importorskip("timm")

from timm.models.efficientformer import Attention  # noqa: E402  (timm only where it is installed)

#: a patch stem, one EfficientFormer attention over its 4x4 tokens (2 heads), a mean and a linear head
TINY = textwrap.dedent("""
    from torch import nn
    from timm.models.efficientformer import Attention


    class Tiny(nn.Module):
        def __init__(self, attention=Attention):
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 4, stride=4)
            self.attn = attention(dim=16, key_dim=4, num_heads=2, attn_ratio=2, resolution=4)
            self.head = nn.Linear(16, 5)

        def forward(self, x):
            x = self.stem(x).flatten(2).transpose(1, 2)
            x = x + self.attn(x)
            return self.head(x.mean(1))


    def build():
        return Tiny()
""")
INPUT = (3, 16, 16)

#: ATen operators that only give a tensor a new view (no element is written)
VIEWS = {"view", "_unsafe_view", "reshape", "permute", "unsqueeze", "squeeze", "expand", "t", "transpose", "alias",
         "detach", "slice", "select", "flatten", "unflatten"}


def _tiny(attention=Attention) -> nn.Module:
    space: dict = {}
    exec(TINY, space)  # the very module the CLI test imports from a file
    torch.manual_seed(0)
    model = space["Tiny"](attention).eval()
    nn.init.normal_(model.attn.attention_biases)
    return model


class Gathering(Attention):
    """EfficientFormer's attention gathering its bias on every pass, as in training (no cache)."""

    def get_attention_biases(self, device: torch.device) -> torch.Tensor:
        return self.attention_biases[:, self.attention_bias_idxs]


def weight_side_ops(module: nn.Module, x: torch.Tensor) -> int:
    """Elements the eval module's captured pass writes computing from its own tensors alone (a gather,
    a layout copy): ATen nodes whose every input is a parameter, a buffer, a constant or such a node,
    views left out. Captured as the module stands (eval() would empty timm's cache): a tensor it kept
    from an earlier pass is a constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # export's notice of a tensor the module assigns itself
        program = torch.export.export(module, (x,), strict=False)
    inputs = set(program.graph_signature.user_inputs)
    own = {n for n in program.graph.nodes if n.op == "placeholder" and n.name not in inputs}
    total = 0
    for node in program.graph.nodes:
        if node.op == "call_function" and node.all_input_nodes and all(a in own for a in node.all_input_nodes):
            own.add(node)
            packet = getattr(node.target, "_overloadpacket", None)
            if packet is None or packet.__name__ not in VIEWS:
                total += node.meta["val"].numel()
    return total


def test_the_cli_lets_no_torch_warning_out_for_a_module_that_keeps_a_tensor(tmp_path):
    """EfficientFormer's attention assigns its gathered bias to itself in eval, and torch.export warns
    so (UserWarning); ``scalelab import`` lets no warning out and says only its own lines."""
    from cli_helpers import invoke

    with pytest.warns(UserWarning, match="assigned during export"):  # the module does trigger it
        torch.export.export(_tiny(), (torch.zeros(2, *INPUT),), strict=False)
    source = tmp_path / "tiny.py"
    source.write_text(TINY)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        result = invoke("import", f"{source}:build", "--input", "3x16x16", "-o", tmp_path / "tiny.yaml")
    assert result.exit_code == 0, result.output
    assert escaped == []
    assert [line.split()[0] for line in result.output.splitlines()] == ["wrote", "imported"], result.output


@pytest.mark.slow  # a fresh interpreter importing torch and timm
def test_the_cli_stderr_holds_no_torch_warning_for_a_module_that_keeps_a_tensor(tmp_path):
    source = tmp_path / "tiny.py"
    source.write_text(TINY)
    result = subprocess.run([sys.executable, "-m", "scalelab", "import", f"{source}:build", "--input", "3x16x16",
                             "-o", str(tmp_path / "tiny.yaml")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "warn" not in result.stderr.lower(), result.stderr
    assert [line.split()[0] for line in result.stderr.splitlines()] == ["wrote", "imported"], result.stderr


def test_a_warning_that_says_something_is_one_note_and_notices_are_dropped():
    class Warns(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            warnings.warn("the stem runs at half width\nsecond line", UserWarning)
            warnings.warn("this argument is deprecated", DeprecationWarning)
            warnings.warn("the default changes in a later release", FutureWarning)
            return self.conv(x)

    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        imported = import_module(Warns(), (3, 8, 8), name="warns")
    assert escaped == []
    # the forward runs under export and again when the import reads its figures: one note
    assert imported.notes == ["warns: warned while it was built and captured: the stem runs at half width"]
    from scalelab.cli.import_cmd import import_summary

    assert import_summary(imported).splitlines()[-1] == f"note: {imported.notes[0]}"


def test_torch_warnings_drops_exports_notice_of_a_tensor_a_module_assigns_itself():
    with torch_warnings("m") as notes:
        torch.export.export(_tiny(), (torch.zeros(2, *INPUT),), strict=False)
    assert notes == []


class Conv(nn.Module):
    """A stem, a conv (and a log-softmax over channels, which the import decomposes) in a region or not."""

    def __init__(self, region):
        super().__init__()
        self.region = region
        self.stem = nn.Conv2d(3, 4, 3)
        self.conv = nn.Conv2d(4, 4, 3)
        self.act = nn.Hardswish()
        self.norm = nn.LogSoftmax(1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        x = self.stem(x)
        with self.region():
            x = self.act(self.conv(x))
            x = self.norm(x)
        return self.fc(x.mean((2, 3)))


class Nested:
    """A no_grad region holding an autocast region (torch.export nests their submodules)."""

    def __enter__(self):
        self.outer, self.inner = torch.no_grad(), torch.autocast("cpu", enabled=False)
        self.outer.__enter__()
        self.inner.__enter__()

    def __exit__(self, *exc):
        self.inner.__exit__(*exc)
        self.outer.__exit__(*exc)


@pytest.mark.parametrize("region", [torch.no_grad, torch.inference_mode, torch.enable_grad, Nested],
                         ids=["no_grad", "inference_mode", "enable_grad", "no_grad_around_autocast"])
def test_a_module_run_in_a_grad_mode_region_keeps_its_qualified_name(region):
    import contextlib

    plain = import_module(Conv(contextlib.nullcontext).eval(), (3, 12, 12), fold=False)
    wrapped = import_module(Conv(region).eval(), (3, 12, 12), fold=False)
    names = [b.name for b in wrapped.spec.blocks]
    assert names == [b.name for b in plain.spec.blocks]
    assert {"stem", "conv", "fc"} <= set(names) and any(n.startswith("norm") for n in names)  # conv + act: one block
    assert wrapped.text == plain.text


def _bias_block(imported) -> dict:
    from scalelab.spec import spec_data

    found = [b for b in spec_data(imported.spec)["blocks"] if b.get("kind") == "position_bias"]
    assert len(found) == 1
    return found[0]


def test_a_bias_the_eval_model_keeps_counts_no_gather_per_pass():
    """timm's EfficientFormer attention gathers its bias on its first eval pass and keeps it: a capture
    after one pass reads the kept tensor, no gather, so the spec counts none per pass."""
    model, x = _tiny(), torch.zeros(2, *INPUT)
    first = weight_side_ops(model, x)  # a fresh model: the first pass gathers
    imported = import_module(model, INPUT, name="tiny")
    assert _bias_block(imported)["cached"] is True
    with torch.no_grad():
        model(x)
    assert weight_side_ops(model, x) == analyze(imported.spec).total.weight_ops
    # the gather the first pass runs is what the same bias gathered on every pass counts
    from scalelab.blocks.layers.positions import PositionBias

    bias = PositionBias((4, 4), 2, (2, 16, 16), offsets="absolute")
    assert first == bias.cost((), bias.out_shape(())).weight_ops > 0


def test_a_bias_gathered_on_every_pass_counts_the_gather_the_graph_runs():
    model, x = _tiny(Gathering), torch.zeros(2, *INPUT)
    imported = import_module(model, INPUT, name="tiny")
    assert "cached" not in _bias_block(imported)
    with torch.no_grad():
        model(x)
    assert weight_side_ops(model, x) == analyze(imported.spec).total.weight_ops > 0  # every pass gathers


def test_swins_signed_bias_counts_its_gather_and_layout_copy_as_torchvision_runs_them():
    from torchvision.models.swin_transformer import _get_relative_position_bias

    from scalelab.blocks.layers.positions import PositionBias
    from scalelab.blocks.layers.positions_torch import relative_position_index

    class Bias(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Parameter(torch.randn(13 * 9, 3))
            self.register_buffer("index", relative_position_index(7, 5).flatten())

        def forward(self, x):
            return x + _get_relative_position_bias(self.table, self.index, [7, 5])

    layer = PositionBias((7, 5), 3, (1, 3, 35, 35), batch_axis=0)
    assert weight_side_ops(Bias(), torch.zeros(2, 3, 35, 35)) == layer.cost((), layer.out_shape(())).weight_ops


def test_the_spec_module_of_a_kept_bias_keeps_it_and_gives_the_sources_outputs():
    from scalelab.build import build_module

    model, x = _tiny(), torch.randn(2, *INPUT)
    imported = import_module(model, INPUT, name="tiny")
    built = build_module(imported.spec).eval()
    keys = list(built.state_dict())
    source = model.state_dict()
    built.load_state_dict({k: source[s] for k, s in zip(keys, imported.state_keys) if s is not None}, strict=False)
    with torch.no_grad():
        expected, first, again = model(x), built(x), built(x)
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(again, expected)
    ops = weight_side_ops(built, x)
    assert ops == analyze(imported.spec).total.weight_ops  # the kept bias: no gather once it ran
    table = next(p for n, p in built.named_parameters() if n.endswith("table"))
    with torch.no_grad():
        table.mul_(3.0)  # written in place, as loading a state dict writes it: gathered again
        written = built(x)
        built.train()
        built.eval()  # a change of mode empties what was kept
        assert torch.equal(built(x), written) and not torch.allclose(written, expected)
