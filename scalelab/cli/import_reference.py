"""`scalelab import ... --top1 77.7 --top1-source "..."`: the reference accuracy an imported spec
states, written as the zoo specs write theirs. A module carries no accuracy, so the spec has one only
when it is given, with where it comes from; nothing is guessed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import yaml
from pydantic import ValidationError

from scalelab.errors import ScalelabError
from scalelab.spec import Spec, parse_spec
from scalelab.spec.model import Reference


@dataclass(frozen=True)
class Top1Options:
    """The --top1 options of `scalelab import`."""

    top1: Optional[float]
    source: Optional[str]
    dataset: str
    crops: int
    pretraining: str
    distillation: str

    def given(self) -> bool:
        return self.top1 is not None

    def check(self) -> None:
        """--top1 and --top1-source go together; the protocol options only with them."""
        if self.top1 is not None and not (self.source or "").strip():
            raise ScalelabError("--top1 needs --top1-source: say where the accuracy comes from (e.g. --top1-source "
                                "\"timm results-imagenet.csv\"); a reference accuracy is never written without one")
        if self.top1 is None and self.source is not None:
            raise ScalelabError("--top1-source names where a --top1 accuracy comes from; give --top1 too")
        if self.top1 is not None:
            reference(self, 1)  # out-of-range values are refused before the model is imported


def reference(options: Top1Options, resolution: int) -> Reference:
    """The reference as the zoo writes it: top-1, dataset, source and protocol (``resolution``: the
    input the model was imported at, the test size its accuracy is stated for)."""
    data = {"top1": options.top1, "dataset": options.dataset, "source": options.source,
            "protocol": {"crops": options.crops, "resolution": resolution, "pretraining": options.pretraining,
                         "distillation": options.distillation}}
    try:
        return Reference.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ScalelabError(f"--top1 options: reference {where}: {error['msg']} (got {error.get('input')!r})") from None


def with_reference(text: str, ref: Reference) -> tuple[Spec, str]:
    """An imported spec's YAML, and the spec it reads as, with ``reference:`` written after the input, as in the zoo specs."""
    line = "reference: " + yaml.safe_dump(ref.model_dump(mode="json", exclude_none=True), default_flow_style=True,
                                          sort_keys=False, width=10**6)
    head, sep, blocks = text.partition("\nblocks:\n")
    new_text = f"{head}\n{line}{sep.lstrip(chr(10))}{blocks}"
    return parse_spec(new_text), new_text


def described(ref: Reference) -> str:
    """The line the import prints: what reference it wrote."""
    return (f"reference: top-1 {ref.top1:g} on {ref.describe_protocol()}, from '{ref.source}' (as given; the protocol "
            f"from --top1-crops, --top1-pretraining and --top1-distillation, the resolution the model was imported at)")
