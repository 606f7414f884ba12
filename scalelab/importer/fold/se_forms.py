"""The ways a host block (bottleneck, mbconv, fused_mbconv) may write the squeeze-excite found in
a region: the short fraction of its input channels where that gives the width, else the long form
(a ratio of the expanded channels, rounded as torchvision's _make_divisible, or the width itself),
with the activation and gate where they differ from the host's."""

from __future__ import annotations

from typing import Any

from scalelab.blocks.se_options import SEOptions
from scalelab.importer.fold.common import settings
from scalelab.importer.fold.items import Item

#: fractions the papers use, tried first so that every block of a stage writes the same one
FRACTIONS = (0.25, 0.0625, 0.125, 0.5)


def _widths(width: int, input_channels: int, expanded: int) -> list[dict]:
    """Long forms (without activation and gate) that give ``width``: the papers' rules first
    (EfficientNet's fraction of the input, MobileNetV3's rounded fraction of the expanded width)."""
    forms: list[dict] = [{"ratio": r} for r in FRACTIONS]
    forms += [{"ratio": r, "of": "expanded", "divisor": 8} for r in FRACTIONS]
    forms += [{"ratio": r, "of": "expanded"} for r in FRACTIONS]
    forms += [{"ratio": round(width / input_channels, 6)}] if width <= input_channels else []
    forms.append({"channels": width})
    return [f for f in forms if SEOptions(**f).width(input_channels, expanded) == width]


def se_forms(se: Item, input_channels: int, expanded: int, activation: str, gate: str = "sigmoid") -> list[Any]:
    """Values of a host's ``se`` field stating the squeeze-excite item ``se`` (a squeeze_excite
    block gating ``expanded`` channels), where the host's own activation and gate are given."""
    block = settings(se)
    width = block.squeeze or SEOptions(ratio=block.ratio, divisor=block.divisor).width(expanded, expanded)
    extra = {k: v for k, v in (("activation", block.activation), ("gate", block.gate))
             if v != (activation if k == "activation" else gate)}
    out: list[Any] = []
    for form in _widths(width, input_channels, expanded):
        if not extra and set(form) == {"ratio"}:
            out.append(form["ratio"])
        else:
            out.append({**form, **extra})
    return out
