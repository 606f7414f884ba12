"""Transfer learning with cached features, worked by hand on ResNet-50 (torchvision's 4,089,184,256
MACs per image at 224; fc 2048 -> 1000)."""

import json

import pytest

from tests.cli_helpers import assert_refused, invoke

RESNET50_MACS = 4_089_184_256  # torchvision ResNet50 _ops
FC = 2048 * 1000


def transfer(*args) -> dict:
    result = invoke("analyze", "resnet50", "--mode", "train", "--cache-features", *args, "-f", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_frozen_through_avgpool_caches_2048_floats_and_trains_the_fc():
    t = transfer("--freeze-until", "avgpool")["transfer"]
    assert t["cached_blocks"] == ["avgpool"]
    assert t["cached_feature_bytes_per_image"] == 2048 * 4 == 8_192
    assert t["one_time_macs_per_image"] == RESNET50_MACS - FC == 4_087_136_256
    assert t["epoch_macs_per_image"] == FC + FC == 4_096_000  # fc forward + weight gradient, no input gradient
    assert t["without_cache"]["epoch_macs_per_image"] == RESNET50_MACS + FC


def test_frozen_through_layer4_2_caches_the_7x7_map_and_costs_the_same_per_epoch():
    t = transfer("--freeze-until", "layer4.2")["transfer"]
    assert t["cached_blocks"] == ["layer4.2"]
    assert t["cached_feature_bytes_per_image"] == 2048 * 7 * 7 * 4 == 401_408
    assert t["one_time_macs_per_image"] == RESNET50_MACS - FC  # the average pool has no multiply-adds
    assert t["epoch_macs_per_image"] == 2 * FC  # nothing flows back through the pool into the cache


def test_frozen_through_layer4_1_trains_one_bottleneck():
    conv1, conv2, conv3 = 49 * 512 * 2048, 49 * 512 * 512 * 9, 49 * 2048 * 512  # on 7x7, 1x1 / 3x3 / 1x1
    block = conv1 + conv2 + conv3
    assert block == 218_365_952
    forward = block + FC
    weight_grads = block + FC
    input_grads = conv2 + conv3 + FC  # conv1 and the shortcut read the cache: no gradient into it
    t = transfer("--freeze-until", "layer4.1")["transfer"]
    assert t["cached_feature_bytes_per_image"] == 2048 * 7 * 7 * 4
    assert t["one_time_macs_per_image"] == RESNET50_MACS - FC - block
    assert t["epoch_macs_per_image"] == forward + weight_grads + input_grads


def test_totals_and_disk_side_by_side_with_no_cache():
    data = transfer("--freeze-until", "avgpool", "--images", "1000", "--epochs", "10")
    t = data["transfer"]
    assert t["total_macs"] == 1000 * 4_087_136_256 + 10 * 1000 * 4_096_000
    assert t["disk_bytes"] == 1000 * 8_192
    assert t["without_cache"]["total_macs"] == 10 * 1000 * (RESNET50_MACS + FC)
    assert t["speedup"] == pytest.approx(t["without_cache"]["total_macs"] / t["total_macs"])
    # the training step without a cache is the training_compute total of the same freeze point
    assert data["training_compute"]["total_macs"] == RESNET50_MACS + FC


def test_fp16_halves_the_cache():
    assert transfer("--freeze-until", "avgpool", "--dtype", "fp16")["transfer"]["cached_feature_bytes_per_image"] == 4_096


def test_bad_transfer_options_are_refused():
    assert_refused(invoke("analyze", "resnet50", "--mode", "train", "--cache-features"), "--freeze-until")
    assert_refused(invoke("analyze", "resnet50", "--images", "10"), "--cache-features")
    assert_refused(invoke("analyze", "resnet50", "--mode", "train", "--cache-features", "--freeze-until", "layer9"),
                   "layer9", "did you mean")
    assert_refused(invoke("analyze", "resnet50", "--mode", "train", "--cache-features", "--freeze-until", "fc"),
                   "no trained block")
    assert_refused(invoke("analyze", "resnet50", "--mode", "train", "--cache-features", "--freeze-until", "avgpool",
                          "--epochs", "3"), "--images")


def test_training_compute_transfer_and_ensembles_import_no_torch(cli_fresh):
    out, heavy = cli_fresh(["analyze", "resnet50", "--mode", "train", "--freeze-until", "avgpool", "--cache-features",
                            "--ensemble", "2", "--crops", "10", "-f", "json"])
    data = json.loads(out)
    assert data["transfer"]["epoch_macs_per_image"] == 4_096_000 and data["ensemble"]["models"] == 2
    assert heavy == []
    out, heavy = cli_fresh(["compare", "resnet18", "resnet50", "--ensembles", "1,2", "-f", "json"])
    assert json.loads(out)["first"] == "resnet18" and heavy == []
