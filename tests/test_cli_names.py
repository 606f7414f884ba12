"""Names where a block is expected (stage names mean their last block), warnings for likely
mistakes, device names in any case, and `plot` defaults."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cli_helpers import assert_refused, invoke
from scalelab.cli import app

HEAD = "name: t\ninput: {channels: 3, resolution: 16}\nblocks:\n"
TAIL = "  - {name: gap, kind: global_avgpool}\n  - {name: fc, kind: linear, out: 10}\n"


def _spec(tmp_path, body: str):
    path = tmp_path / "t.yaml"
    path.write_text(HEAD + body + TAIL)
    return path


def test_freeze_until_a_stage_means_its_last_block():
    # resnet18: stem conv 64*3*7*7 + bn 128 = 9,536; layer1 = two basic blocks of two 3x3 64->64 convs + bn,
    # 2 * 2 * (36,864 + 128) = 147,968: 157,504 frozen parameters up to layer1 (= layer1.1)
    data = json.loads(invoke("analyze", "resnet18", "-r", "32", "--mode", "train", "--freeze-until", "layer1",
                             "-f", "json").stdout)["training_memory"]
    assert data["freeze_until"] == "layer1.1"
    assert data["gradient_bytes"] == (11_689_512 - 157_504) * 4


def test_a_misspelt_block_suggests_stage_names_too():
    assert_refused(invoke("analyze", "resnet50", "--mode", "train", "--freeze-until", "layr2"),
                   "no block or stage named 'layr2'", "did you mean 'layer2'?")


def test_from_a_stage_means_its_last_block(tmp_path):
    body = ("  - {name: stem, kind: conv, out: 8, kernel: 3}\n"
            "  - {stage: res1, repeat: 2, block: {kind: conv, out: 8, kernel: 3}}\n"
            "  - {name: side, kind: conv, out: 8, kernel: 1, from: stem}\n"
            "  - {name: sum, kind: add, from: [res1, side]}\n")
    result = invoke("analyze", _spec(tmp_path, body), "-f", "json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["rows"]}
    # 16x16x8 outputs; the add reads res1.1 and side: 2048 elements, one add each
    assert rows["sum"]["out_shape"] == [8, 16, 16]
    assert "res1.1" in rows and rows["res1.1"]["out_shape"] == [8, 16, 16]
    wrong = body.replace("[res1, side]", "[res, side]")
    assert_refused(invoke("analyze", _spec(tmp_path, wrong)), "t.yaml:7:", "unknown block or stage 'res'",
                   "did you mean 'res1'?")


def test_a_dead_branch_is_warned_about_on_stderr(tmp_path):
    body = ("  - {name: stem, kind: conv, out: 8, kernel: 3}\n"
            "  - {name: side, kind: conv, out: 8, kernel: 1}\n"
            "  - {name: main, kind: conv, out: 8, kernel: 3, from: stem}\n")
    result = CliRunner().invoke(app, ["analyze", str(_spec(tmp_path, body)), "-f", "json"])
    assert result.exit_code == 0
    assert "warning: " in result.stderr and "t.yaml:5:5: blocks[1]: block 'side' (conv)" in result.stderr
    assert "dead branch" in result.stderr
    data = json.loads(result.stdout)  # stdout stays clean JSON; the dead block is still counted
    assert data["total"]["macs"] == sum(r["macs"] for r in data["rows"])
    assert "side" in {r["name"] for r in data["rows"]}


def test_stride_inside_a_stage_block_is_warned_about(tmp_path):
    body = "  - {stage: s, repeat: 2, stride: 2, block: {kind: conv, out: 8, kernel: 3, stride: 2}}\n"
    result = CliRunner().invoke(app, ["analyze", str(_spec(tmp_path, body)), "-f", "json"])
    assert result.exit_code == 0
    assert "t.yaml:4:" in result.stderr and "blocks[0].block.stride" in result.stderr
    assert "write 'stride:' on the stage" in result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)["rows"]}
    assert rows["s.0"]["out_shape"] == [8, 8, 8] and rows["s.1"]["out_shape"] == [8, 8, 8]  # 16 -> 8, then 1
    clean = "  - {stage: s, repeat: 2, stride: 2, block: {kind: conv, out: 8, kernel: 3}}\n"
    assert CliRunner().invoke(app, ["analyze", str(_spec(tmp_path, clean)), "-f", "json"]).stderr == ""


def test_plot_of_a_report_into_one_file_draws_the_accuracy_chart(tmp_path):
    report = tmp_path / "b0.json"
    result = invoke("scale", "--budget", "400MFLOPs", "--trials", "6", "--storage", "memory", "--no-charts",
                    "--report-dir", tmp_path, "--study", "b0", "--format", "json")
    assert result.exit_code == 0, result.output
    out = tmp_path / "acc.png"
    result = invoke("plot", report, "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_refused(invoke("plot", report, "--chart", "all", "-o", tmp_path / "x.png"), "--output names one file")


def test_the_readme_dag_example_with_inception_branches(tmp_path):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    text = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "kind: inception" in b)
    spec = tmp_path / "mini.yaml"
    spec.write_text(text)
    result = CliRunner().invoke(app, ["analyze", str(spec), "-f", "json"])
    assert result.exit_code == 0 and result.stderr == "", result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["rows"]}
    positions = 32 * 32  # 'same' padding keeps 32x32 in every branch
    assert rows["mixed"]["out_shape"] == [16 + 24 + 8, 32, 32]
    assert rows["mixed"]["macs"] == positions * (32 * 16 + 32 * 16 + 16 * 24 * 9 + 32 * 8) == 4_849_664
    assert rows["sum"]["out_shape"] == [48, 32, 32]
