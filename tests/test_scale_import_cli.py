"""`scalelab scale` on imported models through the CLI: a MODEL string is imported first; depth
multiplies a folded import's stages and is refused (exit 2) on a flat one; a base with no reference
top-1 is searched with the proxy score, and the output says so; `scalelab import --top1` writes the
spec's reference as the zoo writes it, and never without a source."""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_refused, invoke
from scalelab.spec import load_spec
from scalelab.spec.model import Stage

pytest.importorskip("torch")

MODELS = '''
from torch import nn


def tiny():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10))


def residual():
    from torchvision.models.resnet import BasicBlock

    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), *[BasicBlock(8, 8) for _ in range(3)],
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
'''


@pytest.fixture()
def models(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(MODELS)
    return path


def _import(models, tmp_path, fn, *options):
    out = tmp_path / f"{fn}{len(options)}.yaml"
    result = invoke("import", f"{models}:{fn}", "-r", 32, "-o", out, *options)
    assert result.exit_code == 0, result.output
    return out


def test_depth_multiplies_a_folded_imports_stages_and_is_refused_on_a_flat_one(models, tmp_path):
    folded = _import(models, tmp_path, "residual")
    stages = [e for e in load_spec(folded).blocks if isinstance(e, Stage)]
    assert [(s.repeat, s.block.kind, s.block.out) for s in stages] == [(3, "residual", 8)]
    out = tmp_path / "deeper.yaml"
    result = invoke("scale", folded, "--width", 1.25, "--depth", 2, "-o", out)
    assert result.exit_code == 0, result.output
    # 3 x 2 = 6 repeats; 8 x 1.25 = 10 -> 8 is below 90% of 10, so 16 channels
    assert [(s.repeat, s.block.out) for s in load_spec(out).blocks if isinstance(s, Stage)] == [(6, 16)]

    flat = _import(models, tmp_path, "residual", "--no-fold")
    assert not any(isinstance(e, Stage) for e in load_spec(flat).blocks)
    assert_refused(invoke("scale", flat, "--width", 1.25, "--depth", 1.5), "depth x1.5 cannot apply", "no stage to deepen")
    assert_refused(invoke("scale", flat, "--phi", 1), "depth x1.2 cannot apply", "--alpha 1")
    assert invoke("scale", flat, "--width", 1.25).exit_code == 0


def test_scale_imports_a_model_string_first(models):
    result = invoke("scale", f"{models}:residual", "--width", 1.25, "--format", "json")
    assert result.exit_code == 0, result.output
    assert f"imported {models}:residual at 3x224x224" in result.stderr
    # the stem 8 -> 16 and the stage's 8 -> 16: 3 x 16 x 9 + 16 for the stem, 3 blocks of two 16 x 16 x 9
    # convs with their batchnorms (2 x 16 each), and the classifier 16 x 10 + 10
    assert json.loads(result.stdout)["params"] == 3 * 16 * 9 + 16 + 3 * 2 * (16 * 16 * 9 + 2 * 16) + 16 * 10 + 10


def test_a_search_of_a_model_without_reference_ranks_by_the_proxy_and_says_so(models, tmp_path):
    result = invoke("scale", f"{models}:tiny", "--budget", "2MFLOPs", "--trials", 4, "--storage", "memory",
                    "--report-dir", tmp_path / "r", "--no-charts", "--format", "json", "--max-resolution", 1.2)
    assert result.exit_code == 0, result.output
    assert "states no reference top-1" in result.stderr and "--accuracy proxy" in result.stderr
    report = json.loads(result.stdout)
    assert report["accuracy_method"] == "proxy" and report["winner"]["macs"] <= 2_000_000


@pytest.mark.slow
def test_the_issues_commands_run_to_the_end(tmp_path):
    pytest.importorskip("timm")
    result = invoke("scale", "timm:efficientnet_b0", "--width", 1.1, "-o", tmp_path / "b0.yaml")
    assert result.exit_code == 0, result.output
    blocks = {getattr(b, "name", None): b for b in load_spec(tmp_path / "b0.yaml").blocks}
    assert (blocks["conv_stem"].out, blocks["conv_head"].out) == (32, 1408)  # 32 x 1.1 = 35.2 -> 32; 1280 x 1.1
    result = invoke("scale", "timm:resnet50d", "--budget", "6GFLOPs", "--trials", 3, "--storage", "memory",
                    "--report-dir", tmp_path / "r", "--no-charts", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["accuracy_method"] == "proxy" and report["winner"]["macs"] <= 6_000_000_000


def test_import_top1_writes_the_reference_as_the_zoo_does(models, tmp_path):
    out = _import(models, tmp_path, "tiny", "--top1", 77.7, "--top1-source", "timm results-imagenet.csv")
    ref = load_spec(out).reference
    assert (ref.top1, ref.dataset, ref.source) == (77.7, "ImageNet-1k", "timm results-imagenet.csv")
    assert ref.protocol.model_dump() == {"crops": 1, "resolution": 32, "pretraining": "none", "distillation": "none"}
    text = out.read_text()
    assert text.index("input:") < text.index("reference:") < text.index("blocks:")


def test_import_top1_without_a_source_is_refused(models, tmp_path):
    out = tmp_path / "never.yaml"
    assert_refused(invoke("import", f"{models}:tiny", "--top1", 77.7, "-o", out), "--top1 needs --top1-source")
    assert_refused(invoke("import", f"{models}:tiny", "--top1-source", "a paper", "-o", out), "give --top1 too")
    assert_refused(invoke("import", f"{models}:tiny", "--top1", 101, "--top1-source", "x", "-o", out), "top1")
    assert not out.exists()
