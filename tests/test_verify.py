"""`scalelab verify SPEC`: the agreement table against the built module, torch, FlopCounterMode and
fvcore; exit 1 on a real mismatch, 2 on bad input. Expected figures are torchvision's published ones."""

from __future__ import annotations

import json

from cli_helpers import assert_refused, invoke


def test_resnet18_agrees_with_torch_flop_counter_and_fvcore():
    result = invoke("verify", "resnet18")
    assert result.exit_code == 0, result.output
    lines = {line.split("  ")[0]: line for line in result.output.splitlines()}
    assert "11,689,512" in lines["parameters"]  # torchvision resnet18: num_params
    assert lines["MACs"].count("1,814,073,344") == 2  # torchvision's 1.814 GFLOPS, scalelab and FlopCounterMode
    assert lines["fvcore total"].rstrip().endswith("explained")
    assert "fvcore adds" in result.output and "batch_norm" in result.output and "every check agrees" in result.output


def test_json_lists_every_check_and_training_only_heads():
    result = invoke("verify", "googlenet", "-f", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    checks = {c["quantity"]: c for c in data["checks"]}
    assert data["agrees"] and set(checks) >= {"block output shapes", "parameters", "MACs", "conv MACs", "linear MACs",
                                              "fvcore total", "training-only parameters"}
    # torchvision GoogLeNet: 13,004,888 with its two auxiliary heads, 6,624,904 without
    assert checks["training-only parameters"]["reference"] == 13_004_888 - 6_624_904


def test_a_real_mismatch_exits_1_and_names_it(monkeypatch):
    from scalelab.blocks import layers

    honest = layers.Conv.cost

    def one_mac_too_many(self, s, out):
        cost = honest(self, s, out)
        return layers.LayerCost(cost.label, cost.params, cost.macs + 1, cost.ops, cost.in_elems, cost.out_elems)

    monkeypatch.setattr(layers.Conv, "cost", one_mac_too_many)
    result = invoke("verify", "lenet5")
    assert result.exit_code == 1, result.output
    assert "MISMATCH in MACs, conv MACs" in result.output
    assert "Traceback" not in result.output


def test_an_imported_spec_verifies(tmp_path):
    out = tmp_path / "squeezenet.yaml"
    assert invoke("import", "torchvision.models:squeezenet1_1", "-r", "96", "-o", out).exit_code == 0
    result = invoke("verify", out)
    assert result.exit_code == 0, result.output


def test_bad_input_is_refused(tmp_path):
    assert_refused(invoke("verify", "no_such_spec"), "no such file or zoo spec")
    spec = tmp_path / "opaque.yaml"
    spec.write_text("name: o\ninput: {channels: 3, resolution: 8}\nblocks:\n"
                    "  - {name: mystery, kind: opaque, op: my.op, shape: [3, 8, 8]}\n")
    assert_refused(invoke("verify", spec), "opaque block(s) (mystery) have no module to build")
