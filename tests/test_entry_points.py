"""Entry points that take a PyTorch model: ``timm:NAME`` (import and analyze), ``scalelab.analyze`` on
an ``nn.Module``, and an analysis shown in a notebook (``_repr_html_``).

Every figure is the module's own: parameters are ``sum(p.numel())`` and MACs are FlopCounterMode's
total / 2 over one eval-mode forward pass with grad enabled and the math attention kernel.
"""

from __future__ import annotations

import json
import runpy
import sys
from html.parser import HTMLParser

import pytest
import timm
import torch
import torchvision
from torch import nn

import scalelab
from cli_helpers import assert_refused, invoke
from scalelab import ScalelabError, load_spec
from scalelab.importer.source import model_input


def reference(model: nn.Module, shape: tuple[int, ...], batch: int = 1) -> tuple[int, int]:
    """(parameters, MACs) of the module itself, as the project defines the reference figure."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    training = model.training
    model.eval()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(torch.zeros(batch, *shape))
    model.train(training)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return sum(p.numel() for p in model.parameters()), flops // 2


class Small(nn.Module):
    """Conv-bn-relu, a residual pair and a linear head: what a user writes by hand."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(self.conv(x) + x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@pytest.fixture(scope="module")
def timm_resnet18():
    torch.manual_seed(0)
    return timm.create_model("resnet18", pretrained=False).eval()


# --------------------------------------------------------------------------------------------------
# scalelab.analyze on a module


def test_a_timm_module_is_analysed_at_its_pretrained_cfg_input(timm_resnet18):
    analysis = scalelab.analyze(timm_resnet18)
    assert tuple(analysis.input_shape) == (3, 224, 224)  # timm's resnet18 is configured at 224
    params, macs = reference(timm_resnet18, (3, 224, 224))
    assert (analysis.total.params, analysis.total.macs) == (params, macs)
    assert params == 11_689_512  # timm's resnet18 has torchvision's parameter count


def test_resolution_and_batch_keep_their_meaning_for_a_module():
    model = torchvision.models.resnet18(weights=None)
    analysis = scalelab.analyze(model, input_shape=(3, 224, 224), resolution=160, batch=4)
    params, macs = reference(model, (3, 160, 160), batch=4)
    assert tuple(analysis.input_shape) == (3, 160, 160) and analysis.batch == 4
    assert (analysis.total.params, analysis.total.macs) == (params, macs)


def test_a_hand_written_module_at_its_input_shape_and_a_rectangular_resolution():
    model = Small().train()
    analysis = scalelab.analyze(model, input_shape=(3, 32, 32), resolution=(24, 40))
    assert model.training  # the import traces in eval mode; the caller's module is left as it was
    assert tuple(analysis.input_shape) == (3, 24, 40)
    params, macs = reference(model, (3, 24, 40))
    # by hand: stem 8*3*9 weights, conv 8*8*9 + 8, fc 8*5 + 5, batchnorm 2*8
    assert params == 216 + 16 + 584 + 45 == analysis.total.params
    assert macs == 24 * 40 * (8 * 27 + 8 * 72) + 40 == analysis.total.macs


def test_a_module_that_states_no_input_needs_input_shape():
    with pytest.raises(ScalelabError, match=r"input_shape=\(channels, height, width\)"):
        scalelab.analyze(Small())
    with pytest.raises(ScalelabError, match="positive integers"):
        scalelab.analyze(Small(), input_shape=(3, 0, 32))


def test_a_spec_takes_no_input_shape_and_still_imports_no_torch(run_fresh):
    with pytest.raises(ScalelabError, match="input_shape applies to a torch module"):
        scalelab.analyze("resnet18", input_shape=(3, 224, 224))
    stdout, heavy = run_fresh("import scalelab\nprint(scalelab.analyze('resnet18', resolution=160).total.params)")
    assert heavy == [] and stdout.split() == ["11689512"]


@pytest.mark.parametrize("name, size", [("mobilevit_xxs", 256), ("nfnet_f0", 192), ("resnet10t", 176)])
def test_the_default_input_of_a_timm_model_is_its_pretrained_cfg(name, size):
    model = timm.create_model(name, pretrained=False)
    # timm's own data config reads the same size (the input its transforms produce)
    assert timm.data.resolve_data_config({}, model=model)["input_size"] == (3, size, size)
    assert model_input(model) == (3, size, size)
    assert model_input(model, resolution=160) == (3, 160, 160)
    assert model_input(model, input_shape=(1, 64, 64)) == (1, 64, 64)
    assert model_input(Small()) == (3, 224, 224)  # a module that states none: the CLI's default


# --------------------------------------------------------------------------------------------------
# The command line


def test_import_timm_name_writes_the_spec_at_the_models_input(tmp_path):
    out = tmp_path / "resnet10t.yaml"
    result = invoke("import", "timm:resnet10t", "-o", out)
    assert result.exit_code == 0, result.output
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", pretrained=False)
    params, macs = reference(model, (3, 176, 176))
    analysis = scalelab.analyze(load_spec(out))
    assert tuple(analysis.input_shape) == (3, 176, 176)
    assert (analysis.total.params, analysis.total.macs) == (params, macs)
    assert f"= the module's sum of p.numel(), {params:,}" in result.output
    narrow = invoke("import", "timm:resnet10t", "--input", "3x96x128", "-o", out)
    assert narrow.exit_code == 0, narrow.output
    assert scalelab.analyze(load_spec(out)).total.macs == reference(model, (3, 96, 128))[1]


def test_import_timm_resnet50_as_the_readme_shows(tmp_path):
    out = tmp_path / "resnet50.yaml"
    result = invoke("import", "timm:resnet50", "-o", out)
    assert result.exit_code == 0, result.output
    params, macs = reference(timm.create_model("resnet50", pretrained=False), (3, 224, 224))
    analysis = scalelab.analyze(load_spec(out))
    assert (analysis.total.params, analysis.total.macs) == (params, macs) == (25_557_032, 4_089_184_256)


def test_analyze_timm_name_reports_like_the_imported_spec(timm_resnet18):
    result = invoke("analyze", "timm:resnet18", "-f", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["total"]["params"], report["total"]["macs"]) == reference(timm_resnet18, (3, 224, 224))
    assert report["conditions"]["resolution"] == [224, 224]
    assert report["imported"] == {"model": "timm:resnet18", "input": [3, 224, 224],
                                  "input_from": "the model's pretrained_cfg input_size"}
    table = invoke("analyze", "timm:resnet18", "-r", "160", "-b", "2", "-l", "1", "-f", "markdown")
    assert table.exit_code == 0, table.output
    assert ("- Imported from timm:resnet18 at 3x160x160 (the resolution asked for, channels from the model's "
            "pretrained_cfg): the spec's parameters and every block's output shape were checked") in table.output
    small = invoke("analyze", "timm:resnet18", "-r", "160", "-b", "2", "-f", "json")
    assert json.loads(small.output)["total"]["macs"] == reference(timm_resnet18, (3, 160, 160), batch=2)[1]


MODEL_FILE = """
from torch import nn


def build():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))
"""


def test_analyze_timm_name_takes_the_training_options_at_the_models_input(tmp_path):
    result = invoke("analyze", "timm:resnet10t", "--mode", "train", "-f", "json")  # as the README shows
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    spec = tmp_path / "resnet10t.yaml"
    assert invoke("import", "timm:resnet10t", "-o", spec).exit_code == 0
    of_spec = json.loads(invoke("analyze", spec, "--mode", "train", "-f", "json").output)
    assert {k: v for k, v in report.items() if k != "imported"} == of_spec  # the imported spec's report, and a note
    assert report["imported"]["input"] == [3, 176, 176] and report["conditions"]["resolution"] == [176, 176]
    torch.manual_seed(0)
    params, macs = reference(timm.create_model("resnet10t", pretrained=False), (3, 176, 176))
    assert (report["total"]["params"], report["total"]["macs"]) == (params, macs)
    assert report["total"]["gradient_bytes"] == 4 * params  # every parameter trained, fp32


def test_analyze_a_file_callable_takes_the_same_options(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_FILE)
    result = invoke("analyze", f"{path}:build", "-r", "32", "-f", "csv", "--columns", "params,macs")
    assert result.exit_code == 0, result.output
    total = next(line for line in result.output.splitlines() if line.startswith("total,"))
    params, macs = reference(runpy.run_path(str(path))["build"](), (3, 32, 32))
    assert total.split(",")[6:8] == [str(params), str(macs)]


def test_an_unknown_timm_name_is_refused_with_close_matches():
    for command in ("import", "analyze"):
        assert_refused(invoke(command, "timm:resnet_18"), "timm has no model 'resnet_18'", "close matches: resnet18")


def test_without_timm_one_message_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` now raises ImportError, as when not installed
    for command in ("import", "analyze"):
        result = invoke(command, "timm:resnet18")
        assert_refused(result, "timm:resnet18: timm is not installed", "pip install timm")
        assert result.output.count("error:") == 1


# --------------------------------------------------------------------------------------------------
# In a notebook


class _Tables(HTMLParser):
    """Each table's header texts, body rows and foot rows as (text, data-key) cells."""

    def __init__(self):
        super().__init__()
        self.tables: list[dict] = []
        self.tags: list[str] = []
        self.part = ""
        self.cell: "list | None" = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "table":
            self.tables.append({"thead": [], "tbody": [], "tfoot": []})
        elif tag in ("thead", "tbody", "tfoot"):
            self.part = tag
        elif tag == "tr":
            self.tables[-1][self.part].append([])
        elif tag in ("td", "th"):
            self.cell = ["", dict(attrs).get("data-key")]

    def handle_endtag(self, tag):
        self.tags.pop()
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][self.part][-1].append((self.cell[0].strip(), self.cell[1]))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[0] += data


def test_an_analysis_shows_the_reports_table_in_a_notebook():
    model = Small()
    analysis = scalelab.analyze(model, input_shape=(3, 32, 32))
    html = analysis._repr_html_()
    assert "<html" not in html and "<style" not in html  # a fragment: the notebook's styles stay untouched
    parser = _Tables()
    parser.feed(html)
    (table,) = parser.tables
    headers = [text for text, _ in table["thead"][0]]
    name, params, macs = headers.index("Block"), headers.index("Params"), headers.index("MACs")
    rows = {row[name][0]: (int(row[params][1]), int(row[macs][1])) for row in table["tbody"]}
    assert rows == {b.name: (b.cost.params, b.cost.macs) for b in analysis.blocks}
    assert (sum(p for p, _ in rows.values()), sum(m for _, m in rows.values())) == reference(model, (3, 32, 32))
    (foot,) = table["tfoot"]
    assert foot[0][0] == "Total (inference)"
    assert foot[params][0] == "861" and foot[macs][0] == "811K"  # 861 parameters; 811,048 MACs
