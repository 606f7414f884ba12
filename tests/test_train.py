"""The `train` accuracy method on a tiny synthetic image folder the test draws (coloured shapes),
on CPU in seconds: it learns, it reports every epoch to Optuna, and it is pruned when told."""

from __future__ import annotations

import json
import random

import optuna
import pytest
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.errors import ScalelabError
from scalelab.scaling.train import train_accuracy, with_classes
from scalelab.spec import parse_spec

TINY = """\
name: tiny
input: {channels: 3, resolution: 16}
defaults: {norm: batchnorm, activation: relu}
blocks:
  - {name: stem, kind: conv, out: 8, kernel: 3, stride: 2}
  - {stage: body, repeat: 1, block: {kind: conv, out: 8, kernel: 3}}
  - {name: pool, kind: global_avgpool}
  - {name: fc, kind: linear, out: 1000}
"""

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """3 classes x 15 PNGs: a square, a disc or a triangle in the class colour on a noisy grey
    background, at random places and sizes."""
    from PIL import Image, ImageDraw

    root = tmp_path_factory.mktemp("shapes")
    rng = random.Random(0)
    for (name, colour), shape in zip(COLOURS.items(), ("square", "disc", "triangle")):
        (root / name).mkdir()
        for i in range(15):
            img = Image.new("RGB", (20, 20), tuple(rng.randint(100, 140) for _ in range(3)))
            draw = ImageDraw.Draw(img)
            size, x, y = rng.randint(7, 11), rng.randint(0, 8), rng.randint(0, 8)
            box = (x, y, x + size, y + size)
            if shape == "square":
                draw.rectangle(box, fill=colour)
            elif shape == "disc":
                draw.ellipse(box, fill=colour)
            else:
                draw.polygon([(x, y + size), (x + size, y + size), (x + size // 2, y)], fill=colour)
            img.save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def tiny():
    return parse_spec(TINY, "tiny.yaml")


def test_classifier_is_resized_to_the_classes(tiny):
    spec = with_classes(tiny, 3)
    assert spec.blocks[-1].out == 3 and tiny.blocks[-1].out == 1000


def test_training_learns_the_shapes(tiny, shapes):
    result = train_accuracy(tiny, shapes, epochs=8, batch_size=8, lr=0.02)
    # 15 per class, 20% held out: 3 validation images per class
    assert (result.classes, result.val_images, result.train_images) == (3, 9, 36)
    assert len(result.history) == 8
    assert result.top1 >= 80.0  # chance is 33%; the colours alone separate the classes
    assert "not an ImageNet accuracy" in result.detail


def test_every_epoch_is_reported_and_the_trial_pruned(tiny, shapes):
    # ThresholdPruner(lower=101) prunes any accuracy (at most 100) at the first report
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=101.0))
    study.optimize(lambda trial: train_accuracy(tiny, shapes, epochs=3, trial=trial).top1, n_trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [0]  # stopped after the first epoch
    assert trial.user_attrs["pruned_after_epoch"] == 1


def test_no_pruning_runs_every_epoch(tiny, shapes):
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    study.optimize(lambda trial: train_accuracy(tiny, shapes, epochs=2, trial=trial).top1, n_trials=1)
    assert list(study.trials[0].intermediate_values) == [0, 1]


def test_bad_data_folders_are_clear(tiny, tmp_path):
    with pytest.raises(ScalelabError, match="no such folder"):
        train_accuracy(tiny, tmp_path / "nope")
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a").mkdir()
    with pytest.raises(ScalelabError, match="training data"):
        train_accuracy(tiny, tmp_path / "only")
    with pytest.raises(ScalelabError, match="--data"):
        train_accuracy(tiny, None)


def test_spec_without_a_classifier_is_refused(tiny):
    headless = parse_spec(TINY.replace("  - {name: fc, kind: linear, out: 1000}\n", ""), "headless.yaml")
    with pytest.raises(ScalelabError, match="final linear classifier"):
        with_classes(headless, 3)


def test_search_with_the_train_method_through_the_cli(tiny, shapes, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    out = tmp_path / "rep"
    res = CliRunner().invoke(app, [
        "scale", str(spec), "--budget", "50MMACs", "--method", "direct", "--accuracy", "train",
        "--data", str(shapes), "--epochs", "2",
        "--trials", "3", "--max-depth", "2", "--max-width", "2", "--max-resolution", "2", "--storage", "memory",
        "--report-dir", str(out), "--no-charts", "--format", "json",
    ])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["accuracy_method"] == "train"
    assert report["winner"]["accuracy_method"] == "train"
    assert "measured" in report["winner"]["accuracy_detail"] and str(shapes) in report["winner"]["accuracy_detail"]
    assert report["winner"]["macs"] <= 50_000_000
