"""`scalelab calibrate --from-table`: a GPU profile fitted on a benchmark table in timm's results CSV
format. The tables here are written by the test from a stand-in GPU whose unknowns are known
(the rtx4090's datasheet figures with other achievable fractions and efficiencies), so the fit must
find that GPU again; a model that resolves to nothing is named and skipped."""

from __future__ import annotations

import pytest

from cli_helpers import assert_refused, invoke
from scalelab.analysis.latency import predict_latency
from scalelab.analysis.latency_published import network
from scalelab.blocks.layers import LatencyClass
from scalelab.devices import load_profile

#: (timm name, zoo network it is, input size, batch): large batch, as timm's tables
ROWS = [("resnet18", "resnet18", 224, 256), ("resnet50", "resnet50", 224, 256), ("resnet50", "resnet50", 160, 512),
        ("mobilenetv2_100", "mobilenet_v2", 224, 256), ("efficientnet_b0", "efficientnet_b0", 224, 256),
        ("resnext50_32x4d", "resnext50_32x4d", 224, 128)]
HEADER = "model,infer_img_size,infer_samples_per_sec,infer_step_time,infer_batch_size"


def stand_in():
    """A GPU with the rtx4090's datasheet figures and unknowns of its own."""
    base = load_profile("rtx4090")
    efficiency = {**base.efficiency, LatencyClass.DEPTHWISE_CONV: 0.12, LatencyClass.GROUPED_CONV: 0.3}
    return base.model_copy(update={"achievable_compute": 0.4, "achievable_bandwidth": 0.6, "efficiency": efficiency})


def write_table(path, extra: str = "", header: str = HEADER) -> None:
    gpu, lines = stand_in(), [header]
    for timm, zoo, size, batch in ROWS:
        ms = predict_latency(network(zoo, size), gpu, "amp", batch).total_ms
        lines.append(f"{timm},{size},{1e3 * batch / ms:.2f},{ms:.3f},{batch}")
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "scalelab" / "imports.sqlite"


def test_the_fit_finds_the_stand_in_gpu_and_skips_what_it_cannot_resolve(tmp_path, cache):
    from scalelab.devices.profile import parse_profile

    table = tmp_path / "bench.csv"
    write_table(table, "nosuchnet_42,224,1000.0,256.0,256\n")
    out = tmp_path / "fitted.yaml"
    result = invoke("calibrate", "--from-table", table, "--device", "rtx4090", "--name", "mine", "-o", out)
    assert result.exit_code == 0, result.output
    assert "skipped nosuchnet_42: not in the zoo, and importing timm:nosuchnet_42 failed:" in result.output
    assert "fitted mine on 6 rows of bench.csv (5 networks, 1 skipped, amp): median error" in result.output
    profile = parse_profile(out.read_text(encoding="utf-8"), str(out))
    truth = stand_in()
    assert profile.name == "mine" and profile.peak_flops == truth.peak_flops  # datasheet figures kept
    assert profile.achievable_compute == pytest.approx(truth.achievable_compute, rel=0.05)
    # depthwise and grouped convolutions are memory-bound at this batch, so their efficiencies are only bounded:
    # what must hold is the time they predict, for every row
    for timm, zoo, size, batch in ROWS:
        ms = predict_latency(network(zoo, size), profile, "amp", batch).total_ms
        assert ms == pytest.approx(predict_latency(network(zoo, size), truth, "amp", batch).total_ms, rel=0.02), timm
    device_bound = profile.errors["device_bound"]
    assert device_bound.rows == 6 and device_bound.networks == 5 and device_bound.median < 0.02
    assert profile.errors["host_bound"].median is None  # no small-batch row: a wide stated error, said so
    assert profile.calibration["skipped"] == {"nosuchnet_42": result.output.split("skipped nosuchnet_42: ")[1].splitlines()[0]}
    assert f"device-bound: held-out median error {device_bound.median:.1%} over 6 rows of 5 networks" in result.output
    assert cache.exists()  # the refusal is cached too: a table of a thousand rows is imported once


def test_columns_are_mapped_and_rows_filtered(tmp_path, cache):
    table = tmp_path / "other.csv"
    write_table(table, header="arch,res,img_per_s,step_ms,bs")
    mapped = ["--column", "model=arch", "--column", "img_size=res", "--column", "throughput=img_per_s",
              "--column", "batch=bs"]
    result = invoke("calibrate", "--from-table", table, "--device", "rtx4090", *mapped, "--filter", "resnet*")
    assert result.exit_code == 0, result.output
    assert "on 3 rows of other.csv (2 networks, amp)" in result.output  # resnet18, resnet50 twice (not resnext50)
    chosen = invoke("calibrate", "--from-table", table, "--device", "rtx4090", *mapped, "--models",
                    "resnet18,mobilenetv2_100")
    assert chosen.exit_code == 0 and "on 2 rows of other.csv (2 networks, amp)" in chosen.output


def test_an_imported_model_is_imported_once(tmp_path, cache, monkeypatch):
    from scalelab.analysis import calibrate_table
    from scalelab.spec.load import zoo_path

    calls = []

    def fake_import(ref, input_shape):  # what `scalelab import timm:NAME` writes, for a network the zoo holds
        calls.append((ref, input_shape))
        return zoo_path("resnet34").read_text(encoding="utf-8")

    monkeypatch.setattr(calibrate_table, "_import", fake_import)
    resnet34 = predict_latency(network("resnet34", 224), stand_in(), "amp", 256).total_ms
    table = tmp_path / "t.csv"
    write_table(table, f"my_resnet34,224,{256e3 / resnet34:.2f},{resnet34:.3f},256\n")
    for _ in range(2):
        result = invoke("calibrate", "--from-table", table, "--device", "rtx4090")
        assert result.exit_code == 0, result.output
        assert "(6 networks (1 imported from timm), amp)" in result.output
    assert calls == [("timm:my_resnet34", (3, 224, 224))]  # the second run read the cache
    invoke("calibrate", "--from-table", table, "--device", "rtx4090", "--no-cache")
    assert len(calls) == 2


@pytest.mark.parametrize("args, fragments", [
    (["--from-table", "{t}"], ["--from-table needs --device NAME"]),
    (["--from-table", "{t}", "--device", "rtx4090", "--networks", "20"], ["--networks does not apply here",
                                                                        "fits on a published table"]),
    (["--device", "rtx4090"], ["--device does not apply here", "needs --from-table"]),
    (["--from-table", "{t}", "--device", "x86_cpu"], ["--from-table fits a GPU profile", "x86_cpu is a cpu profile"]),
    (["--from-table", "{t}", "--device", "rtx4090", "--column", "size=res"], ["unknown key 'size'", "img_size"]),
    (["--from-table", "{t}", "--device", "rtx4090", "--column", "model=arch"], ["no column for model ('arch')"]),
    (["--from-table", "{t}", "--device", "rtx4090", "--models", "vgg19"], ["the table has no rows for vgg19"]),
    (["--from-table", "{t}", "--device", "rtx4090", "--filter", "vit*"], ["no row is left", "'vit*' matches none"]),
    (["--from-table", "{bad}", "--device", "rtx4090"], ["bad.csv:3: column 'infer_batch_size' (batch) must be a "
                                                        "positive whole number, got '0'"]),
    (["--from-table", "{t}", "--device", "rtx4090", "--models", "resnet18"], ["1 model(s) resolved", "at least 2"]),
])
def test_refusals(tmp_path, cache, args, fragments):
    table, bad = tmp_path / "t.csv", tmp_path / "bad.csv"
    write_table(table)
    bad.write_text(f"{HEADER}\nresnet18,224,100.0,1.0,1\nresnet50,224,100.0,1.0,0\n", encoding="utf-8")
    result = invoke("calibrate", *[a.format(t=table, bad=bad) for a in args])
    assert_refused(result, *fragments)


def test_comment_lines_and_pretrained_tags(tmp_path, cache):
    # timm's names may carry a pretrained tag, which never changes the network; '#' lines are comments
    table = tmp_path / "tagged.csv"
    write_table(table)
    text = table.read_text(encoding="utf-8").replace("\nresnet50,224,", "\nresnet50.a1_in1k,224,")
    table.write_text("# a citation line\n" + text, encoding="utf-8")
    result = invoke("calibrate", "--from-table", table, "--device", "rtx4090")
    assert result.exit_code == 0, result.output
    assert "on 6 rows of tagged.csv (6 networks, amp)" in result.output and "  skipped: {}" in result.output
