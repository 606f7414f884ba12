"""Memory of imported timm models against torch's probe run on the ORIGINAL timm module (not on the
module rebuilt from the spec): the inference peak (live activation bytes of an eval-mode CPU pass,
counted by a TorchDispatchMode) and one real training step (weights, gradients, Adam's state and
the tensors autograd saves for backward), at 3x64x64: inference at batch 1 and 2, training at
batch 2 and 3 (a training batchnorm refuses one value per channel, as MobileNetV4's head norm after
the global pool sees at batch 1).

Where the original module holds memory that no spec states, the test says what and asserts the
exact difference:
- timm's ``forward_features`` writes ``x = self.blocks(x)``, so its local ``x`` (the stem's output)
  stays alive while every block runs; the spec's blocks free it after its last reader;
- timm's activations work in place (``nn.LeakyReLU(inplace=True)``): torch then saves the output
  for backward where the spec's out-of-place activation saves its input beside the output, and in
  inference writes no second tensor;
- a ResNet-T/D stem ends ``conv1`` (a Sequential) with a conv whose norm and activation are
  ``bn1`` and ``act1``: one conv block in the spec, which keeps its input until the norm has run,
  where ``conv1`` has already returned and freed it.
"""

import pytest

pytest.importorskip("timm")

RESOLUTION = 64
BATCHES = (1, 2)  # inference
TRAIN_BATCHES = (2, 3)
ADAM_STEP_COUNTERS = 4  # bytes: one fp32 step counter per trained tensor, apart from the state buffers

# one model per family; the default run keeps two of them
EXACT = [
    "resnet18",  # ResNet: basic blocks, max-pool stem
    "mobilenetv4_conv_small",  # MobileNetV4: universal inverted residuals
    pytest.param("regnety_002", marks=pytest.mark.slow),  # RegNetY: group convs, squeeze-excite
    pytest.param("dla34", marks=pytest.mark.slow),  # DLA: tree aggregation (concat of levels)
    pytest.param("xception41", marks=pytest.mark.slow),  # Xception: separable convs, entry flow
    pytest.param("mobileone_s0", marks=pytest.mark.slow),  # MobileOne: parallel conv branches summed
]


def _imported(name):
    """The original timm module and the network of its imported spec."""
    import timm

    from scalelab.graph import resolve
    from scalelab.importer import import_module

    module = timm.create_model(name, pretrained=False)
    imported = import_module(module, (3, RESOLUTION, RESOLUTION), name=name, ref=f"timm:{name}")
    return module, resolve(imported.spec)


def _training(network, batch):
    from scalelab.analysis.memory import training_memory

    model = training_memory(network, batch=batch, optimizer="adam")
    return {"weight_bytes": model.weight_bytes, "gradient_bytes": model.gradient_bytes,
            "optimizer_bytes": model.optimizer_bytes, "saved_bytes": model.saved_bytes}


def _probe_training(module, batch):
    from scalelab.analysis.memory_probe import module_training_step

    real = module_training_step(module, (3, RESOLUTION, RESOLUTION), "adam", batch=batch)
    trained = sum(1 for p in module.parameters() if p.requires_grad)
    assert real.pop("step_counter_bytes") == ADAM_STEP_COUNTERS * trained
    return real


@pytest.mark.parametrize("name", EXACT)
def test_imported_memory_equals_the_original_module(name):
    from scalelab.analysis.memory import inference_memory
    from scalelab.analysis.memory_probe import inference_peak

    module, network = _imported(name)
    for batch in BATCHES:
        peak = inference_memory(network, batch=batch).peak_bytes
        assert peak == inference_peak(module, network.input_shape, batch), (name, batch)
    for batch in TRAIN_BATCHES:
        assert _training(network, batch) == _probe_training(module, batch), (name, batch)


@pytest.mark.slow
def test_efficientnet_holds_its_stem_output_through_the_blocks():
    """Training exactly. Inference: torch's peak falls inside ``self.blocks(x)``, where
    ``forward_features`` still holds the stem's output, 32 channels at 32x32 (stride 2 of 64), fp32;
    the spec frees it once the first block has read it. Nothing else differs."""
    from scalelab.analysis.memory import inference_memory
    from scalelab.analysis.memory_probe import inference_peak

    module, network = _imported("efficientnet_b0")
    for batch in BATCHES:
        held_by_the_caller = batch * 32 * 32 * 32 * 4
        peak = inference_memory(network, batch=batch).peak_bytes
        assert inference_peak(module, network.input_shape, batch) == peak + held_by_the_caller
    for batch in TRAIN_BATCHES:
        assert _training(network, batch) == _probe_training(module, batch)


@pytest.mark.slow
def test_in_place_leaky_relu_saves_less_than_the_spec_states():
    """CSPResNet's LeakyReLU(inplace=True): autograd saves the activation's output, the tensor the
    next conv saves too; the spec's out-of-place LeakyReLU saves its input as well. The same module
    with each activation's ``inplace`` cleared saves exactly what the spec states."""
    module, network = _imported("cspresnet50")
    in_place = [m for m in module.modules() if getattr(m, "inplace", False) is True]
    assert in_place and all(type(m).__name__ == "LeakyReLU" for m in in_place)
    for batch in TRAIN_BATCHES:
        as_written = _probe_training(module, batch)
        spec = _training(network, batch)
        assert as_written["saved_bytes"] < spec["saved_bytes"]
        for m in in_place:
            m.inplace = False
        assert _probe_training(module, batch) == spec
        for m in in_place:
            m.inplace = True


@pytest.mark.slow
def test_in_place_relu_writes_no_second_tensor():
    """VGG's ReLU(inplace=True) after each conv: the same module with ``inplace`` cleared peaks
    exactly where the spec does; as written, lower. Training is exact either way (ReLU saves its
    output, which the next conv or pool saves too)."""
    from scalelab.analysis.memory import inference_memory
    from scalelab.analysis.memory_probe import inference_peak

    module, network = _imported("vgg11")
    in_place = [m for m in module.modules() if getattr(m, "inplace", False) is True]
    assert in_place and all(type(m).__name__ == "ReLU" for m in in_place)
    for batch in BATCHES:
        peak = inference_memory(network, batch=batch).peak_bytes
        assert inference_peak(module, network.input_shape, batch) < peak
        for m in in_place:
            m.inplace = False
        assert inference_peak(module, network.input_shape, batch) == peak
        for m in in_place:
            m.inplace = True
    for batch in TRAIN_BATCHES:
        assert _training(network, batch) == _probe_training(module, batch)


@pytest.mark.slow
def test_a_tiered_stem_frees_its_last_input_before_the_norm():
    """resnet10t: ``conv1`` is conv (24), bn, relu, conv (32), bn, relu, conv (64); ``bn1`` and
    ``act1`` follow outside it. The spec's block ``conv1.6`` (that conv, bn1, act1) holds its input,
    32 channels at 32x32 (fp32), while the norm runs, at the network's peak; torch has freed it."""
    from scalelab.analysis.memory import inference_memory
    from scalelab.analysis.memory_probe import inference_peak

    module, network = _imported("resnet10t")
    for batch in BATCHES:
        model = inference_memory(network, batch=batch)
        assert model.peak_block == "conv1.6"
        assert inference_peak(module, network.input_shape, batch) == model.peak_bytes - batch * 32 * 32 * 32 * 4
    for batch in TRAIN_BATCHES:
        assert _training(network, batch) == _probe_training(module, batch)


def test_the_readme_names_the_models_checked():
    """The README's memory section names exactly the models that hold to the byte here."""
    import re
    from pathlib import Path

    readme = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    start = readme.index("for timm's ", readme.index("- *Imported models* are checked against the original module"))
    claim = " ".join(readme[start + len("for timm's "): readme.index(" the inference peak", start)].split())
    assert re.split(r",? and |, ", claim) == [p if isinstance(p, str) else p.values[0] for p in EXACT]
