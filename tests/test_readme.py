"""The README's examples and figures, executed: the README cannot drift from what the code does.

Two kinds of example are found in README.md and run through the CLI:

- a fenced block whose lines start with ``$ scalelab ...``: each command, and the lines under it up to
  the next ``$`` line as its shown output;
- a ``text`` block introduced by a paragraph that names a ``scalelab ...`` command in backticks and
  ends with a colon: that command, and the block as its output.

The shown lines must appear, in order, among the lines the command prints (an example may show an
excerpt), compared token by token: every count, byte figure, shape and estimate must be the same;
table rules and column padding may differ with the width. Figures the README states in prose are
each recomputed by a check below and must appear in the README as the code writes them. Measured
timings are machine-dependent and never compared: the README quotes them as measurements.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import pytest

from cli_helpers import invoke

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
RULE = re.compile(r"^[─━═│┃┏┓┗┛┡┩┳┻╇╋└┘┌┐├┤┬┴┼\s]+$")


def _blocks() -> list[tuple[str, str, str]]:
    """(fence info, text of the block, the paragraph before it) for every fenced block."""
    out = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```$", README, re.S | re.M):
        before = README[:m.start()].rstrip("\n").split("\n\n")[-1]
        out.append((m.group(1), m.group(2), before))
    return out


def readme_examples() -> list[tuple[str, list[str]]]:
    """(command, the output lines the README shows for it), in README order."""
    examples = []
    for info, text, before in _blocks():
        lines = text.rstrip("\n").split("\n")
        if lines and lines[0].startswith("$ scalelab "):
            for line in lines:
                if line.startswith("$ "):
                    examples.append((line[2:], []))
                else:
                    examples[-1][1].append(line)
        elif info == "text" and before.rstrip().endswith(":"):
            named = re.findall(r"`(scalelab [^`]+)`", before)
            if named:
                examples.append((named[-1], lines))
    return examples


def tokens(line: str) -> tuple[str, ...]:
    return tuple(line.split())


def shown_in(shown: list[str], printed: str) -> list[str]:
    """The shown lines (rules and blank lines aside) that are not found, in order, among the printed
    ones. A printed line of prose may be shown wrapped over several lines."""
    lines = [tokens(line) for line in printed.splitlines() if not RULE.match(line)]
    shown = [line for line in shown if line.strip() and not RULE.match(line)]
    missing, at, i = [], 0, 0
    while i < len(shown):
        for k in range(1, 6):
            want = sum((tokens(line) for line in shown[i:i + k]), ())
            found = next((j for j in range(at, len(lines)) if lines[j] == want), None)
            if found is not None:
                at, i = found + 1, i + k
                break
        else:
            missing.append(shown[i])
            i += 1
    return missing


EXAMPLES = readme_examples()
SLOW = ("scalelab import ", "scalelab verify ")  # build or trace torch models: seconds each


def test_the_examples_are_found():
    commands = [c for c, _ in EXAMPLES]
    assert "scalelab analyze resnet50 --level 1" in commands
    assert "scalelab verify resnet50" in commands and "scalelab explain specs/examples/separable_6x6x3.yaml" in commands
    assert all(shown for _, shown in EXAMPLES), "every example shows output"


@pytest.mark.parametrize("command, shown", [
    pytest.param(c, s, id=c, marks=[pytest.mark.slow] if c.startswith(SLOW) else [])
    for c, s in EXAMPLES])
def test_readme_example_prints_what_the_readme_shows(command, shown, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("COLUMNS", raising=False)  # piped width, as the README shows the tables
    args = shlex.split(command)[1:]
    result = invoke(*args)
    printed = result.stdout + result.stderr
    missing = shown_in(shown, printed)
    assert not missing, f"`{command}` no longer prints:\n" + "\n".join(missing) + f"\n--- it prints:\n{printed}"


def test_the_comparison_of_lines_notices_a_changed_figure():
    printed = "stem  conv  64x112x112  9.54K  118M\nfc  linear  1000  2.05M\n"
    assert shown_in(["stem  conv  64x112x112  9.54K  118M"], printed) == []
    assert shown_in(["stem conv 64x112x112 9.54K 119M"], printed) == ["stem conv 64x112x112 9.54K 119M"]
    assert shown_in(["fc linear 1000 2.05M", "stem conv 64x112x112 9.54K 118M"], printed)  # order matters
    assert shown_in(["stem conv 64x112x112", "  9.54K 118M"], printed) == []  # one printed line, shown wrapped


# ---------------------------------------------------------------- figures stated in prose


def said(text: str) -> bool:
    """Whether the README says ``text`` (whitespace, line breaks included, as one space)."""
    return " ".join(text.split()) in " ".join(README.split())


def _json(*args) -> dict:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_resnet50_totals():
    data = _json("analyze", "resnet50", "-f", "json")
    total = data["total"]
    assert said(f"ResNet-50: {total['params']:,} parameters, {total['macs']:,} MACs")


def test_resnet18_training_compute():
    data = _json("analyze", "resnet18", "--mode", "train", "-f", "json")
    tc = data["training_compute"]
    stem = next(r for r in data["rows"] if r["name"] == "stem")["macs"]
    forward = tc["forward_macs"]
    assert tc["total_macs"] == 3 * forward - stem
    assert said(f"3 × {forward:,} − the stem's {stem:,} = {tc['total_macs']:,} MACs per image")


def test_b0_thin_and_high_resolution():
    from scalelab.analysis.costs import analyze
    from scalelab.scaling.accuracy import estimate_accuracy
    from scalelab.scaling.compound import scale_spec
    from scalelab.spec import load_spec

    b0 = load_spec("efficientnet_b0")
    macs = analyze(scale_spec(b0, 1.0, 0.37, (506, 506))).total.macs
    share = macs / analyze(b0).total.macs
    top1 = estimate_accuracy(b0, 1.0, 0.37, 506).top1
    assert said(f"width x0.37 at 506 px: {macs:,} MACs, {share:.0%} of B0's, estimates {top1:.2f}")
    assert said(f"(B0 at width x0.37 and 506 px, {share:.0%} of B0's MACs: {top1:.2f} against B0's "
                f"{b0.reference.top1:.2f})")


def test_compare_plain34_resnet34_resnet18():
    data = _json("compare", "plain34", "resnet34", "resnet18", "-f", "json")
    plain, res34, res18 = data["networks"]
    assert said(f"the residual version costs x{res34['ratio_to_first']['macs']:.3g} the plain one's MACs for "
                f"{res34['ratio_to_first']['top1']:+.2f} points")
    assert said(f"its {res18['ratio_to_first']['top1']:+.2f} points against plain34")
    assert said(f"the zoo's resnet34 shows torchvision's single-crop {res34['top1']:.2f}")


def test_ensembles_against_bigger_resnets():
    data = _json("compare", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "--ensembles", "1,2,3",
                 "--crops", "1,10", "-f", "json")
    v = {x["label"]: x for x in data["variants"]}
    assert said(f"three ResNet-18s (5.4 G MACs, {v['resnet18 x3']['top1']:.1f} [{v['resnet18 x3']['low']:.1f}, "
                f"{v['resnet18 x3']['high']:.1f}] estimated)")
    x2 = v["resnet18 x2"]
    assert said(f"two ResNet-18s ({x2['macs'] / 1e9:.3g} G, {x2['top1']:.2f} [{x2['low']:.2f}, {x2['high']:.2f}]), "
                f"which costs {1 - x2['macs'] / v['resnet34']['macs']:.1%} less than ResNet-34 "
                f"({v['resnet34']['macs'] / 1e9:.3g} G, {v['resnet34']['top1']:.2f}) and estimates "
                f"{v['resnet34']['top1'] - x2['top1']:.1f} points below it")
    # the front up to the largest single network: single networks, and two ResNet-18s
    from scalelab.scaling.ensembles import Variant, pareto

    fields = set(Variant.__dataclass_fields__)
    front = pareto([Variant(**{k: x[k] for k in fields}) for x in data["variants"]])
    below = [f.label for f in front if f.macs <= v["resnet152"]["macs"]]
    assert below == ["resnet18", "resnet18 x2", "resnet34", "resnet50", "resnet101", "resnet152"]


@pytest.mark.slow
def test_the_default_search_and_the_direct_one(tmp_path):
    two = _json("scale", "--budget", "400MFLOPs", "--storage", "memory", "--report-dir", tmp_path, "--no-charts",
                "--format", "json")
    ts, w = two["two_step"], two["winner"]
    assert said(f"finds alpha {ts['alpha']:.1f} ({round(ts['alpha'] * 16)} blocks), beta {ts['beta']:.3f}, gamma "
                f"{ts['gamma']:.3f} and phi = {ts['phi']:.2f}")
    assert said(f"refines the width to x{w['width']:.3f} ({w['pixels']} px: {w['macs']:,} MACs, "
                f"{100 * two['budget_use']['macs']:.1f}% of the budget; estimated {w['accuracy']:.2f} "
                f"[{w['low']:.2f}, {w['high']:.2f}])")
    direct = _json("scale", "--budget", "400MFLOPs", "--method", "direct", "--storage", "memory", "--report-dir",
                   tmp_path, "--no-charts", "--format", "json")
    w = direct["winner"]
    assert said(f"Its winner (depth x{w['depth']:g} built, i.e. B0's {w['blocks']} blocks, width x{w['width']:.3f}, "
                f"{w['pixels']} px: {w['macs']:,} MACs, estimated {w['accuracy']:.2f} [{w['low']:.2f}, {w['high']:.2f}]) "
                f"ties B0 within the intervals ({direct['ties']['count']} of the {direct['ties']['of']} other feasible "
                "candidates do)")


@pytest.mark.slow
def test_avoid_below_b0(tmp_path):
    report = _json("scale", "--budget", "300MFLOPs", "--storage", "memory", "--report-dir", tmp_path, "--no-charts",
                   "--format", "json")
    w = report["winner"]
    assert said(f"depth stays at B0's {w['blocks']} blocks and width and input shrink, x{w['width']:.3f} at "
                f"{w['pixels']} px")


def test_transfer_with_cached_features():
    t = _json("analyze", "resnet50", "--mode", "train", "--freeze-until", "avgpool", "--cache-features", "--images",
              "10000", "--epochs", "30", "-f", "json")["transfer"]
    assert said(f"ResNet-50 frozen through avgpool: {t['cached_feature_bytes_per_image']:,} bytes per image, "
                f"{t['one_time_macs_per_image']:,} MACs once, then {t['epoch_macs_per_image']:,} per image per epoch")
    assert said(f"10,000 images for 30 epochs take {t['total_macs'] / 1e12:.1f} T MACs and "
                f"{t['disk_bytes'] / 2 ** 20:.0f} MiB of disk instead of {t['without_cache']['total_macs'] / 1e15:.2f} P "
                f"MACs, x{t['speedup']:.0f} less work")


@pytest.mark.slow  # the leave-one-out validation refits the law per held-out network (20 s)
def test_the_scaling_law_its_intervals_and_its_validation():
    v = _json("accuracy", "--validate", "-f", "json")
    law, iv = v["law"], v["intervals"]
    d, w, r = (law[k] for k in ("depth", "width", "resolution"))
    assert said(f"Fitted: depth s = {d['floor']:.3f}, k = {d['exponent']:.1f}")
    assert said(f"width s = {w['floor']:.3f}, k = {w['exponent']:.3f}, resolution s = {r['floor']:.3f}, "
                f"k = {r['exponent']:.3f}")
    rng = law["fitted_range"]
    assert said(f"(depth x{rng['depth'][0]:g} to x{rng['depth'][1]:.3g} in blocks, width x{rng['width'][0]:g} to "
                f"x{rng['width'][1]:g}, resolution x{rng['resolution'][0]:.3g} to x{rng['resolution'][1]:.3g})")
    assert said(f"and L ({iv['distance_scale']:.2f}) the value") and said(f"q = {iv['q']:.2f} points inside the fitted range")
    assert said(f"{iv['coverage_series_held_out']:.0%} of the {iv['held_out_networks']} networks")
    rows = {"efficientnet": "EfficientNet B1-B7 (paper)", "efficientnet_torchvision": "EfficientNet B1-B7 (torchvision weights)",
            "mobilenet_v1_width": "MobileNet v1 width 0.75 / 0.5 / 0.25",
            "mobilenet_v1_resolution": "MobileNet v1 resolution 192 / 160 / 128",
            "mobilenet_v2_width": "MobileNet v2 width 1.4", "resnet_basic_depth": "ResNet-34 from ResNet-18",
            "resnet_bottleneck_depth": "ResNet-101, 152 from ResNet-50"}
    assert set(rows) == set(v["series"])
    for key, label in rows.items():
        s = v["series"][key]
        assert said(f"| {label} | {len(s['holdouts'])} | {s['mean_abs_error']:.2f} | {s['max_abs_error']:.2f} |"), label


def test_the_ensemble_gain_law():
    from scalelab.scaling.accuracy.ensemble_gain import fitted_gain

    law = fitted_gain()
    assert said(f"error × models^-{law.a:.3f} × crops^-{law.b:.3f}, leave-one-out mean error "
                f"{law.mean_abs_error:.1%} of the baseline error")


def test_bigger_networks_against_their_ensembles_and_crops():
    data = _json("compare", "resnet50", "resnet101", "resnet152", "--ensembles", "1,2", "--crops", "1,10", "-f", "json")
    v = {x["label"]: x for x in data["variants"]}
    x2, c10 = v["resnet50 x2"], v["resnet50 10-crop"]
    assert said(f"two ResNet-50s ({x2['macs'] / 1e9:.1f} G, {x2['top1']:.1f} [{x2['low']:.1f}, {x2['high']:.1f}]) "
                f"against one ResNet-101 ({v['resnet101']['macs'] / 1e9:.1f} G, {v['resnet101']['top1']:.2f})")
    assert said(f"ten crops of ResNet-50 cost {c10['macs'] / 1e9:.1f} G MACs for {c10['top1']:.1f} [{c10['low']:.1f}, "
                f"{c10['high']:.1f}], about what one ResNet-152 gives on one crop ({v['resnet152']['top1']:.2f}) for "
                f"{v['resnet152']['macs'] / 1e9:.1f} G")


def test_the_inception_bottleneck_comparison():
    examples = ROOT / "specs" / "examples"
    data = _json("compare", examples / "inception_5x5.yaml", examples / "inception_5x5_bottleneck.yaml", "-f", "json")
    ratio = data["networks"][1]["ratio_to_first"]
    assert f"{ratio['macs']:.3g}" == f"{ratio['params']:.3g}" and said(f"(x{ratio['macs']:.3g} the MACs and parameters)")


@pytest.mark.slow
def test_one_bigger_network_or_an_ensemble_under_2gflops(tmp_path):
    report = _json("scale", "--budget", "2GFLOPs", "--ensembles", "1,2,3", "--crops", "1,10", "--storage", "memory",
                   "--report-dir", tmp_path, "--no-charts", "--format", "json")
    best = {b["label"]: b for b in report["ensembles"]["best"]}
    w = report["winner"]

    def cell(b):
        return f"{b['accuracy']:.2f} [{b['low']:.1f}, {b['high']:.1f}]"

    assert said(f"one EfficientNet-B0 scaled to {w['blocks']} blocks, width x{w['width']:.2f}, {w['pixels']} px "
                f"({w['macs'] / 1e9:.2f} G MACs) {cell(best['single'])}")
    assert said(f"two networks of {best['x2']['macs'] / 2e9:.2f} G each {cell(best['x2'])}; three of "
                f"{best['x3']['macs'] / 3e9:.2f} G {cell(best['x3'])}; ten crops of a "
                f"{best['10-crop']['macs'] / 1e10:.1f} G network {cell(best['10-crop'])}; two networks on ten crops "
                f"{cell(best['x2 10-crop'])}; three on ten crops {cell(best['x3 10-crop'])}")
    assert not any(b["extrapolated"] for b in best.values())


def test_depth_is_what_is_built():
    from scalelab.scaling.accuracy import repeated_blocks
    from scalelab.scaling.compound import depth_levels
    from scalelab.spec import load_spec

    b0 = load_spec("efficientnet_b0")
    levels = depth_levels(b0, 0.25, 4.0)
    blocks = ", ".join(str(lv.blocks) for lv in levels[:9])
    assert said(f"B0's {levels[5].blocks} repeated blocks become {blocks}, ... blocks")
    before, after = repeated_blocks(b0, 1.1)
    assert said(f"depth x1.1 of B0 is {after} blocks, x{after / before:.2f}")
    assert said(f"x{after / before:.3f} for {after} blocks")
    # any multiplier in (1, 1.25] builds the same network
    assert {repeated_blocks(b0, m)[1] for m in (1.01, 1.1, 1.2, 1.25)} == {after} != {repeated_blocks(b0, 1.26)[1]}


def test_the_interval_far_from_the_data():
    from scalelab.scaling.accuracy.intervals import calibration

    low, high = calibration().interval(77.0, 4.0, 3.0, 3.0)
    assert said(f"±{(high - low) / 2:.2f} at depth x4, width x3, resolution x3 from B0")


def test_width_keeps_the_groups():
    from scalelab.scaling.compound import scale_spec
    from scalelab.spec import load_spec

    base, wide = load_spec("resnext50_32x4d"), scale_spec(load_spec("resnext50_32x4d"), 1.0, 1.3)
    mid, scaled = base.blocks[2].block.mid, wide.blocks[2].block.mid
    assert scaled % 32 == 0 and said(f"({mid} x 1.3 = {mid * 1.3:.1f} -> {scaled})")


def test_the_convention_and_the_bounds():
    from scalelab import limits
    from scalelab.analysis import CONVENTION

    assert said(f"> {CONVENTION}")

    def power(n: int) -> str:
        for base in (2, 10):
            k = round(math.log(n, base))
            if base ** k == n:
                return f"{base}^{k}"
        return str(n)

    for what, bound in (("| channels, features, groups, classes", f"1 to {power(limits.MAX_CHANNELS)} |"),
                        ("| repeats of a stage |", f"1 to {power(limits.MAX_REPEAT)} |"),
                        ("| batch (`--batch`) |", f"1 to {power(limits.MAX_BATCH)} |"),
                        ("| test crops (", f"1 to {power(limits.MAX_CROPS)} |"),
                        ("| ensemble size (", f"1 to {limits.MAX_ENSEMBLE} |")):
        row = next(line for line in README.splitlines() if line.startswith(what))
        assert row.endswith(bound), row


# ---------------------------------------------------------------- the import section's claims


@pytest.mark.slow
def test_analyze_a_torchvision_model_at_another_resolution(reference_macs):
    """`scalelab analyze torchvision.models:resnet50 -r 160`: the module's own parameters and reference
    MACs at 160x160, the import noted in the JSON."""
    import torch
    import torchvision

    report = _json("analyze", "torchvision.models:resnet50", "-r", "160", "--format", "json")
    model = torchvision.models.resnet50().eval()
    assert report["imported"]["input"] == [3, 160, 160]
    assert report["total"]["params"] == sum(p.numel() for p in model.parameters())
    assert report["total"]["macs"] == reference_macs(model, torch.zeros(1, 3, 160, 160))


def test_a_region_under_no_grad_or_autocast_is_entered(reference_macs):
    """Wrapper nodes (a region under torch.no_grad() or autocast) are entered: their operators are
    counted as any other."""
    import torch
    from torch import nn

    from scalelab import analyze
    from scalelab.importer import import_module

    class Regions(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, 4)

        def forward(self, x):
            with torch.no_grad():
                y = self.conv(x).relu()
            with torch.autocast("cpu", enabled=False):
                y = y.mean((2, 3))
            return self.fc(y)

    model = Regions().eval()
    result = analyze(import_module(model, (3, 16, 16), name="regions").spec)
    assert said("wrapper nodes (a region run under `torch.no_grad()` or autocast) are entered")
    assert result.total.params == 8 * 3 * 9 + 8 + 8 * 4 + 4
    assert result.total.macs == 16 * 16 * 8 * 27 + 8 * 4 == reference_macs(model, torch.zeros(1, 3, 16, 16))


def test_a_weight_computed_from_parameters_is_refused_by_name():
    """A weight standardised by hand rather than as timm's StdConv2d (batch norm on the weight): the
    weight is computed from a parameter in a way no spec states, so the import refuses the conv by
    name instead of counting it as a plain one (timm's form: tests/test_weight_standardization.py)."""
    import torch.nn.functional as F
    from torch import nn

    from scalelab.errors import ScalelabError
    from scalelab.importer import import_module

    class StandardisedConv(nn.Conv2d):
        def forward(self, x):
            w = self.weight
            w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.var((1, 2, 3), keepdim=True, unbiased=False) + 1e-5).sqrt()
            return F.conv2d(x, w, self.bias, self.stride, self.padding)

    with pytest.raises(ScalelabError) as info:
        import_module(nn.Sequential(StandardisedConv(3, 8, 3, padding=1), nn.ReLU()).eval(), (3, 16, 16), name="ws")
    assert said("a weight computed any other way has no spec form, and the import refuses it by name")
    assert "aten.conv2d.default x1 (its weight is computed, not a parameter)" in str(info.value)


def test_a_zoo_spec_shown_beside_an_import_is_the_zoo_files_own_lines():
    """A ``# specs/NAME.yaml`` block beside an import shows that file's lines as they are written."""
    shown = [(text.splitlines()[0][2:], text.splitlines()[1:]) for info, text, _ in _blocks()
             if info == "yaml" and text.startswith("# specs/")]
    assert {path for path, _ in shown} >= {"specs/resnet50.yaml", "specs/mobilenet_v2.yaml"}
    for path, lines in shown:
        written = (ROOT / path).read_text(encoding="utf-8").splitlines()
        assert [line for line in lines if line not in written] == [], path


@pytest.mark.slow
def test_timm_mobilenetv2_100_folds_into_the_zoo_specs_stages():
    """timm's mobilenetv2_100 holds seven stages of 1, 2, 3, 4, 3, 3, 1 blocks (timm's ``blocks``):
    folded, they are the zoo's mobilenet_v2 stages, setting for setting."""
    import timm
    import torch

    from scalelab import load_spec
    from scalelab.importer import import_module
    from scalelab.spec.model import Stage

    assert said("timm's mobilenetv2_100 gives the seven stages of the zoo's `specs/mobilenet_v2.yaml`")
    torch.manual_seed(0)
    model = timm.create_model("mobilenetv2_100", pretrained=False).eval()
    folded = import_module(model, (3, 224, 224), name="mobilenetv2_100").spec

    def structure(spec):
        return [(e.repeat, e.stride or 1, e.block.kind, e.block.out, e.block.kernel, e.block.expand, e.block.se,
                 e.block.activation) for e in spec.blocks if isinstance(e, Stage)]

    assert [e.stage for e in folded.blocks if isinstance(e, Stage)] == [f"blocks.{i}" for i in range(len(model.blocks))]
    assert [e.repeat for e in folded.blocks if isinstance(e, Stage)] == [len(s) for s in model.blocks] == [1, 2, 3, 4, 3, 3, 1]
    assert structure(folded) == structure(load_spec("mobilenet_v2"))


# ---------------------------------------------------------------- options as the README and --help state them


def _readme_dtypes() -> list[str]:
    sentence = re.search(r"`--dtype` is ([\w ,]+?) and `--optimizer`", " ".join(README.split()))
    assert sentence, "README 'Bounds' states the data types --dtype takes"
    return re.findall(r"\w+", sentence.group(1).replace(" or ", ", "))


DTYPE_COMMANDS = [["analyze", "resnet18"], ["compare", "resnet18", "lenet5"], ["plot", "resnet18", "--breakdown", "macs"],
                  ["scale", "lenet5", "--budget", "400MFLOPs"]]


@pytest.mark.parametrize("command", DTYPE_COMMANDS, ids=lambda c: c[0])
def test_every_command_takes_the_dtypes_the_readme_lists_and_says_so_in_its_help(command):
    dtypes = _readme_dtypes()
    assert dtypes == ["fp32", "tf32", "fp16", "bf16", "int8", "amp"]
    help_text = " ".join(invoke(command[0], "--help").stdout.split())
    dtype_help = help_text[help_text.index("--dtype"):][:200]
    assert all(d in dtype_help for d in dtypes), dtype_help
    refused = invoke(*command, "--dtype", "fp8")
    assert refused.exit_code == 2
    assert f"Invalid value for '--dtype': unknown dtype 'fp8'; one of {', '.join(dtypes)}" in refused.stderr


@pytest.mark.parametrize("dtype", ["tf32", "amp"])
@pytest.mark.parametrize("command", DTYPE_COMMANDS[:3], ids=lambda c: c[0])
def test_the_dtypes_beyond_the_storage_types_are_taken(tmp_path, command, dtype):
    out = tmp_path / ("chart.svg" if command[0] == "plot" else "report.json")
    result = invoke(*command, "--dtype", dtype, "-o", out)
    assert result.exit_code == 0, result.output
    assert out.exists()
