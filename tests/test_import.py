"""`scalelab import`: a module defined here, the refusal of operations no block states, opaque
imports, the command line, and the round trip through ``build_module``. Expected figures are worked
out by hand or measured on the module (sum of p.numel(), FlopCounterMode), never by scalelab."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cli_helpers import assert_refused, invoke
from import_checks import assert_rebuilt_module_computes_the_same, assert_reanalysed_without_torch
from scalelab import analyze, load_spec
from scalelab.importer import import_module

MODEL_FILE = '''
import torch
from torch import nn

try:  # an operator no table knows, registered once per process
    wiggle = torch.ops.scalelab_test.wiggle
except AttributeError:
    @torch.library.custom_op("scalelab_test::wiggle", mutates_args=())
    def wiggle(x: torch.Tensor) -> torch.Tensor:
        return x * torch.sin(x)

    @wiggle.register_fake
    def _(x):
        return torch.empty_like(x)


class Wiggly(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = wiggle(self.conv(x))
        x = wiggle(x)
        return self.head(x.mean([2, 3]))


def build():
    return Wiggly()


def not_a_module():
    return 42


class Branchy(nn.Module):
    def forward(self, x):
        return x if x.mean() > 0 else -x


def branchy():
    return Branchy()
'''


class Small(nn.Module):
    """Conv-bn-relu stem, a residual pair, two concatenated branches, squeeze-excite, head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.conv_a = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(16)
        self.left = nn.Conv2d(16, 8, 1)
        self.right = nn.Conv2d(16, 8, 3, padding=1)
        self.se_pool = nn.AdaptiveAvgPool2d(1)
        self.se_down = nn.Conv2d(16, 4, 1)
        self.se_up = nn.Conv2d(4, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(self.bn_a(self.conv_a(x)) + x)
        x = torch.cat([self.left(x), self.right(x)], 1)
        gate = torch.sigmoid(self.se_up(torch.relu(self.se_down(self.se_pool(x)))))
        x = x * gate
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_a_small_module_imports_exactly_with_patterns_folded(count_params, flop_counter_macs):
    model = Small().eval()
    imported = import_module(model, (3, 32, 32), name="small")
    kinds = {b.name: b.kind for b in analyze(imported.spec).blocks}
    # conv+bn+relu -> one conv block; add+relu -> add; cat -> concat; the SE pattern -> squeeze_excite
    assert kinds["stem"] == "conv" and kinds["conv_a"] == "conv" and kinds["add"] == "add"
    assert kinds["cat"] == "concat" and "squeeze_excite" in kinds.values()
    assert len(kinds) == 10  # stem, conv_a, add, left, right, cat, SE, global pool, flatten, fc
    result = analyze(imported.spec)
    # by hand: stem 3*16*9 + bn 32; conv_a 16*16*9 + bn 32; left 16*8 + 8; right 16*8*9 + 8;
    # SE 16*4 + 4 + 4*16 + 16; fc 16*10 + 10
    params = 432 + 32 + 2304 + 32 + 136 + 1160 + 148 + 170
    assert result.total.params == params == count_params(model)
    # by hand, 16x16 maps after the stride-2 stem: stem 256*16*27, conv_a 256*16*144, left 256*8*16,
    # right 256*8*144, SE 16*4 + 4*16, fc 160
    macs = 256 * 16 * 27 + 256 * 16 * 144 + 256 * 8 * 16 + 256 * 8 * 144 + 128 + 160
    assert result.total.macs == macs == flop_counter_macs(model, torch.zeros(1, 3, 32, 32))
    assert result.blocks[-1].out_shape == (10,)


def test_a_small_module_round_trips_through_its_yaml(tmp_path, run_fresh, count_params, reference_macs):
    model = Small().eval()
    torch.manual_seed(0)
    for bn in (model.stem[1], model.bn_a):  # statistics other than the defaults, so that loading them matters
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    imported = import_module(model, (3, 32, 32), name="small")
    assert_reanalysed_without_torch(imported, tmp_path, run_fresh, count_params(model),
                                    reference_macs(model, torch.zeros(1, 3, 32, 32)))
    assert_rebuilt_module_computes_the_same(imported, model, torch.randn(2, 3, 32, 32))


def test_imported_block_shapes_equal_the_modules_outputs():
    """Forward hooks on the real module give each named module's output shape."""
    model = Small().eval()
    seen = {}

    def hook(name):
        def record(module, inputs, output):
            seen[name] = tuple(output.shape[1:])
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules() if name]
    model(torch.zeros(1, 3, 32, 32))
    for handle in handles:
        handle.remove()
    blocks = analyze(import_module(model, (3, 32, 32)).spec).blocks
    checked = [b.name for b in blocks if b.name in seen and tuple(b.out_shape) == seen[b.name]]
    assert checked == [b.name for b in blocks if b.name in seen] and len(checked) >= 5


def test_an_unsupported_operation_is_refused_with_where_and_how_often(tmp_path):
    path = tmp_path / "wiggly.py"
    path.write_text(MODEL_FILE)
    out = tmp_path / "spec.yaml"
    result = invoke("import", f"{path}:build", "-o", out)
    assert_refused(result, "scalelab_test.wiggle.default x2", "no spec block computes it", "at <top level>",
                   "--allow-unsupported")
    assert not out.exists()


def test_allow_unsupported_keeps_opaque_blocks_and_every_report_says_so(tmp_path):
    path = tmp_path / "wiggly.py"
    path.write_text(MODEL_FILE)
    out = tmp_path / "spec.yaml"
    result = invoke("import", f"{path}:build", "--allow-unsupported", "--input", "3x32x32", "-o", out)
    assert result.exit_code == 0, result.output
    spec = load_spec(out)
    analysis = analyze(spec)
    assert [b.kind for b in analysis.blocks].count("opaque") == 2
    assert analysis.total.params == 3 * 8 * 9 + 8 + 8 * 10 + 10  # exact: opaque blocks hold no parameters here
    assert analysis.total.macs == 1024 * 8 * 27 + 80  # the known part only: a lower bound
    for fmt in ("table", "json", "markdown", "html"):
        report = invoke("analyze", out, "-f", fmt)
        assert report.exit_code == 0 and "UNKNOWN COST" in report.output, (fmt, report.output)
    csv = invoke("analyze", out, "-f", "csv").output  # data only: each opaque row says its kind
    assert [line.split(",")[2] for line in csv.splitlines() if ",wiggle" in line] == ["opaque", "opaque"]
    assert "scalelab_test.wiggle.default x2" in result.output  # the summary on stderr says what is opaque


@pytest.mark.parametrize("ref, fragment", [
    ("no_such_package_xyz:build", "cannot import 'no_such_package_xyz'"),
    ("torchvision.models:no_such_model", "has no attribute 'no_such_model'"),
    ("{file}:not_a_module", "returned a int, not a torch.nn.Module"),
    ("{dir}/missing.py:build", "no such file"),
    ("{file}:branchy", "torch.export cannot capture this module at 3x224x224"),
])
def test_bad_model_references_are_refused(tmp_path, ref, fragment):
    (tmp_path / "wiggly.py").write_text(MODEL_FILE)
    ref = ref.format(file=tmp_path / "wiggly.py", dir=tmp_path)
    assert_refused(invoke("import", ref), fragment)


@pytest.mark.parametrize("args, fragment", [
    (["--input", "3x224"], "--input: expected channels x height x width"),
    (["--input", "3x64x64", "--resolution", "64"], "not both"),
    (["-o", "spec.txt"], ".yaml, .yml or .json"),
])
def test_bad_options_are_refused(args, fragment):
    assert_refused(invoke("import", "torchvision.models:alexnet", *args), fragment)


def test_import_writes_a_spec_that_analyzes_like_the_module(tmp_path, torchvision_model, count_params):
    out = tmp_path / "alexnet.yaml"
    result = invoke("import", "torchvision.models:alexnet", "--input", "3x224x224", "-o", out)
    assert result.exit_code == 0, result.output
    assert "parameters 61,100,840" in result.output  # the summary on stderr
    assert analyze(load_spec(out)).total.params == count_params(torchvision_model("alexnet")) == 61_100_840
    stdout = invoke("import", "torchvision.models:alexnet")
    assert stdout.exit_code == 0 and out.read_text() in stdout.output
    as_json = tmp_path / "alexnet.json"
    assert invoke("import", "torchvision.models:alexnet", "-o", as_json).exit_code == 0
    assert analyze(load_spec(as_json)).total == analyze(load_spec(out)).total  # JSON is YAML too


def test_analyze_imports_a_model_on_the_fly(torchvision_model, flop_counter_macs):
    result = invoke("analyze", "torchvision.models:resnet18", "-f", "json", "-r", "160")
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.output)
    assert report["total"]["params"] == 11_689_512
    assert report["total"]["macs"] == flop_counter_macs(torchvision_model("resnet18"), torch.zeros(1, 3, 160, 160))


@pytest.mark.parametrize("zoo", ["resnet18", "mobilenet_v2", "googlenet", "efficientnet_b0"])
def test_round_trip_through_build_module_keeps_the_totals(zoo):
    from scalelab.build import build_module

    original = analyze(zoo)
    imported = import_module(build_module(zoo).eval(), original.input_shape, name=zoo)
    again = analyze(imported.spec)
    # activations (block outputs) differ: the imported spec has finer blocks than the zoo's
    assert (again.total.params, again.total.macs, again.total.ops) == \
        (original.total.params, original.total.macs, original.total.ops)
    assert again.blocks[-1].out_shape == original.blocks[-1].out_shape


def test_a_module_that_cannot_run_at_the_input_size_is_refused():
    assert_refused(invoke("import", "torchvision.models:alexnet", "-r", "16"), "cannot run on a 3x16x16 input")


def test_shufflenet_and_convnext_patterns_are_recognised(torchvision_model):
    """The matchers behind channel_shuffle, channel_split and channels-last regions, on torchvision's
    own modules: ShuffleNetV2 x0.5 has 16 units, each ending in a shuffle of 2 groups, 13 of them
    splitting their input in 2; ConvNeXt-T permutes to channels-last and back in each of its
    18 blocks and 5 LayerNorm2d (stem, 3 downsamplings, head)."""
    from scalelab.importer import patterns
    from scalelab.importer.capture import capture
    from scalelab.importer.table import known

    shuffle = capture(torchvision_model("shufflenet_v2_x0_5"), (3, 64, 64), "shufflenet", known)
    found, inside = patterns.find_channel_shuffle(shuffle)
    assert len(found) == 16 and {fields["groups"] for fields, _, _, _ in found.values()} == {2}
    assert len(inside) == 16 * 3  # view to 5-D, transpose, contiguous
    assert [patterns.channel_split(n, shuffle) for n in shuffle.nodes() if patterns.channel_split(n, shuffle)] == [2] * 13

    convnext = capture(torchvision_model("convnext_tiny"), (3, 64, 64), "convnext", known)
    layouts, last = [], set()
    for node in convnext.nodes():
        if node.op != "call_function":
            continue
        layout = patterns.permute_layout(node, convnext, any(a in last for a in node.all_input_nodes))
        if layout:
            layouts.append(layout)
        if layout == "last" or (layout is None and any(a in last for a in node.all_input_nodes)):
            last.add(node)
    assert layouts == ["last", "first"] * (18 + 5)


def test_analysing_an_imported_spec_needs_no_torch(tmp_path, cli_fresh):
    path = tmp_path / "small.yaml"
    path.write_text(import_module(Small().eval(), (3, 32, 32), name="small").text)
    stdout, heavy = cli_fresh(["analyze", str(path), "--format", "json"])
    assert heavy == [] and '"params": 4414' in stdout


def test_an_opaque_layer_refuses_every_face_that_needs_its_arithmetic():
    from scalelab.blocks.layers import Opaque
    from scalelab.errors import ScalelabError

    layer = Opaque("my.op", (4, 2, 2), 7)
    cost = layer.cost((4, 2, 2), (4, 2, 2))
    assert (cost.params, cost.macs, cost.ops) == (7, 0, 0)
    faces = [lambda: layer.train_macs((4, 2, 2), (4, 2, 2)), lambda: layer.saved((4, 2, 2), (4, 2, 2), True, True, "cpu"),
             lambda: layer.inner_peak((4, 2, 2), (4, 2, 2)), layer.latency, layer.torch_module]
    for face in faces:
        with pytest.raises(ScalelabError, match="opaque layer my.op: its .* is unknown"):
            face()


class Gated(nn.Module):
    """y = relu(conv(x)); y * sigmoid(conv1x1(y)): a gate with no pooling (it once ended in IndexError)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gate = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return y * torch.sigmoid(self.gate(y))


class Attending(nn.Module):
    """A conv stem, nn.MultiheadAttention over the positions and a LayerNorm."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.norm = nn.LayerNorm(16)

    def forward(self, x):
        t = self.stem(x).flatten(2).transpose(1, 2)
        return self.norm(self.attn(t, t, t)[0])


def test_a_gated_module_imports_exactly(tmp_path, run_fresh, reference_macs):
    model = Gated().eval()
    imported = import_module(model, (3, 32, 32), name="gated")
    result = analyze(imported.spec)
    # by hand: conv 3*8*9 + 8, gate 8*8 + 8; MACs 1024 positions * (8*27 + 8*8)
    assert result.total.params == 224 + 72 == sum(p.numel() for p in model.parameters())
    assert result.total.macs == 1024 * (8 * 27 + 8 * 8) == reference_macs(model, torch.zeros(1, 3, 32, 32))
    assert [b.kind for b in result.blocks] == ["conv", "conv", "binary"]
    assert_reanalysed_without_torch(imported, tmp_path, run_fresh, 296, result.total.macs)
    assert_rebuilt_module_computes_the_same(imported, model, torch.randn(2, 3, 32, 32))


def test_allow_unsupported_keeps_the_parameters_of_attention_exact(reference_macs):
    """nn.MultiheadAttention with its averaged weights (bmm over the batch merged with the heads) once
    had opaque blocks here; it now imports whole, and exactly."""
    model = Attending().eval()
    imported = import_module(model, (3, 16, 16), name="attending", allow_unsupported=True)
    result = analyze(imported.spec)
    # by hand: stem 3*16*9 + 16; in_proj 3*16*16 + 48, out_proj 16*16 + 16; norm 2*16
    assert result.total.params == 448 + 816 + 272 + 32 == sum(p.numel() for p in model.parameters())
    assert not imported.opaque and result.blocks[-1].out_shape == (64, 16)
    assert result.total.macs == reference_macs(model, torch.zeros(1, 3, 16, 16))


def _imports_exactly(model, shape, tmp_path, run_fresh, reference_macs, params: int):
    """``model`` imports with ``params`` parameters (worked out by hand, equal to the module's) and
    the reference MACs; its YAML re-analysed without torch and its rebuilt module agree."""
    model = model.eval()
    imported = import_module(model, shape, name=type(model).__name__.lower())
    result = analyze(imported.spec)
    macs = reference_macs(model, torch.zeros(1, *shape))
    assert result.total.params == params == sum(p.numel() for p in model.parameters())
    assert result.total.macs == macs
    assert_reanalysed_without_torch(imported, tmp_path, run_fresh, params, macs)
    assert_rebuilt_module_computes_the_same(imported, model, torch.randn(2, *shape))
    return result


class TokenMixer(nn.Module):
    """A feature map to tokens (flatten of two axes, transpose), linear and layer norm over the last
    axis, heads by reshape and permute, matmul, softmax, the heads merged back (a reshape torch
    copies), slices and a selected token, RMS norm and a head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 2, stride=2)
        self.proj = nn.Linear(8, 16)
        self.norm = nn.LayerNorm(16)
        self.rms = nn.RMSNorm(8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        t = self.norm(self.proj(self.stem(x).flatten(2).transpose(1, 2)))  # (B, 16, 16)
        b, n, _ = t.shape
        q = t.reshape(b, n, 2, 8).permute(0, 2, 1, 3)  # (B, 2, 16, 8)
        o = (q @ q.transpose(-2, -1)).softmax(-1) @ q
        o = o.transpose(1, 2).reshape(b, n, 16)[:, 1:, ::2]  # (B, 15, 8)
        return self.head(self.rms(o.select(1, 0)))


def test_tokens_views_products_and_norms_over_trailing_axes_import_exactly(tmp_path, run_fresh, reference_macs):
    # by hand: stem 3*8*4 + 8; proj 8*16 + 16; norm 2*16; rms 8; head 8*5 + 5
    result = _imports_exactly(TokenMixer(), (3, 8, 8), tmp_path, run_fresh, reference_macs,
                              104 + 144 + 32 + 8 + 45)
    kinds = [b.kind for b in result.blocks]
    for kind in ("reshape", "permute", "matmul", "softmax", "contiguous", "slice", "select", "rms_norm"):
        assert kind in kinds, kind
    assert kinds.count("matmul") == 2 and kinds.count("contiguous") == 1  # only the merge of heads copies
    # by hand: stem 16 positions * 8 * 12; proj 16 * 8 * 16; two products 2 heads * 16 * 16 * 8; head 8 * 5
    assert result.total.macs == 1536 + 2048 + 2 * 4096 + 40


class MapNorms(nn.Module):
    """Group and instance norm on feature maps, ECA's channel attention (a Conv1d over the pooled
    channels, views, expand_as), a roll, batch norm on (C, L) and (C,), and a stack."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gn = nn.GroupNorm(2, 8)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.eca = nn.Conv1d(1, 1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(8)
        self.bn0 = nn.BatchNorm1d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.inorm(self.gn(self.conv(x)))
        y = self.eca(x.mean((2, 3)).view(x.shape[0], 1, -1)).view(x.shape[0], -1, 1, 1).sigmoid()
        x = torch.roll(x * y.expand_as(x), shifts=(1, -2), dims=(2, 3))
        v = self.bn0(self.bn1(x.flatten(2)).amax(-1))  # (B, 8, 64) then (B, 8)
        h = self.fc(v)
        return torch.stack([h, h.neg()], dim=1)


def test_group_instance_and_batch_norms_eca_roll_and_stack_import_exactly(tmp_path, run_fresh, reference_macs):
    # by hand: conv 3*8*9 + 8; gn 16; inorm 16; eca 3; bn1, bn0 16 each; fc 8*4 + 4
    result = _imports_exactly(MapNorms(), (3, 8, 8), tmp_path, run_fresh, reference_macs,
                              224 + 16 + 16 + 3 + 32 + 36)
    kinds = [b.kind for b in result.blocks]
    for kind in ("group_norm", "instance_norm", "conv1d", "expand", "roll", "batchnorm", "stack"):
        assert kind in kinds, kind
    # by hand: conv 64 positions * 8 * 27; eca 8 positions * 3; fc 8 * 4
    assert result.total.macs == 13824 + 24 + 32


class Products(nn.Module):
    """mm and bmm with a parameter operand, a class token expanded to the batch and concatenated."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(12, 6))
        self.m = nn.Parameter(torch.randn(6, 5))
        self.cls = nn.Parameter(torch.randn(1, 1, 5))

    def forward(self, x):
        t = x.flatten(1)  # (B, 12)
        y = torch.mm(t, self.w).view(-1, 1, 6)  # (B, 1, 6)
        z = torch.bmm(y.expand(-1, 3, -1), self.m.expand(y.shape[0], -1, -1))  # (B, 3, 5)
        return torch.cat([self.cls.expand(x.shape[0], -1, -1), z], dim=1)


def test_mm_bmm_and_an_expanded_class_token_import_exactly(tmp_path, run_fresh, reference_macs):
    result = _imports_exactly(Products(), (3, 2, 2), tmp_path, run_fresh, reference_macs, 72 + 30 + 5)
    assert [b.kind for b in result.blocks].count("matmul") == 2
    assert result.total.macs == 12 * 6 + 3 * 6 * 5  # by hand
