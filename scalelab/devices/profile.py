"""Device profiles: what the latency roofline needs to know about a device, kept as YAML data.

A profile gives peak FLOP/s per dtype, the fraction of it real kernels reach, memory bandwidth and
the fraction of it reached, a per-kernel launch (dispatch) overhead, and optional per-kind compute
efficiencies (depthwise convolutions reach far less of the peak than dense ones) and per-kind fixed
costs (on a CPU a depthwise convolution costs tens of microseconds however small its input; a ReLU a
few). Every datasheet figure carries its source.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from scalelab.errors import ScalelabError, did_you_mean

ComputeDtype = Literal["fp32", "tf32", "fp16", "bf16", "int8"]
#: layer kinds a profile may give an efficiency or overhead for (see scalelab.analysis.latency.layer_kind)
EFFICIENCY_KINDS = ("dense_conv", "pointwise_conv", "grouped_conv", "depthwise_conv", "strided_depthwise_conv", "linear",
                    "pool", "norm", "elementwise")
EfficiencyKind = Literal["dense_conv", "pointwise_conv", "grouped_conv", "depthwise_conv", "strided_depthwise_conv",
                         "linear", "pool", "norm", "elementwise"]
#: a kind a profile does not name takes the figure of the kind it refines
FALLBACK_KIND = {"strided_depthwise_conv": "depthwise_conv", "norm": "elementwise"}
DATASHEET_FIGURES = ("peak_flops", "memory_bandwidth")


class DeviceProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    kind: Literal["gpu", "cpu"]
    peak_flops: dict[ComputeDtype, float] = Field(min_length=1, description="peak FLOP/s (2 per multiply-add) per dtype")
    memory_bandwidth: float = Field(gt=0, description="bytes per second")
    achievable_compute: float = Field(gt=0, le=1, description="fraction of peak FLOP/s real kernels reach")
    achievable_bandwidth: float = Field(gt=0, le=1, description="fraction of the bandwidth real kernels reach")
    launch_overhead_us: float = Field(ge=0, description="fixed time per kernel (launch or dispatch), microseconds")
    efficiency: dict[EfficiencyKind, float] = Field(
        default_factory=dict, description="per layer kind, a multiplier (0-1] on achievable compute; default 1")
    overhead_us: dict[EfficiencyKind, float] = Field(
        default_factory=dict, description="per layer kind, fixed time per layer in microseconds; default launch_overhead_us")
    half_efficiency_channels: dict[EfficiencyKind, float] = Field(
        default_factory=dict, description="per layer kind, the output channels (features) at which a layer reaches half "
        "its kind's efficiency: efficiency x n / (n + this); thin matrix multiplies fill few vector registers")
    combine: Literal["max", "sum"] = Field(
        "max", description="how a layer's compute and memory times combine: max (the roofline, for datasheet profiles) or "
        "sum (the linear form `scalelab calibrate` fits on whole networks)")
    sources: dict[str, str] = Field(description="where each datasheet figure comes from")
    calibration: Optional[dict] = Field(None, description="conditions of the measurement, for calibrated profiles")

    @model_validator(mode="after")
    def _checks(self):
        for figure in DATASHEET_FIGURES:
            if not self.sources.get(figure):
                raise ValueError(f"sources.{figure} is missing: every datasheet figure needs a source")
        for dtype, flops in self.peak_flops.items():
            if flops <= 0:
                raise ValueError(f"peak_flops.{dtype} must be positive, got {flops}")
        for kind, value in self.efficiency.items():
            if not 0 < value <= 1:
                raise ValueError(f"efficiency.{kind} must be in (0, 1], got {value}")
        for kind, value in self.half_efficiency_channels.items():
            if value < 0:
                raise ValueError(f"half_efficiency_channels.{kind} must be at least 0, got {value}")
        for kind, value in self.overhead_us.items():
            if value < 0:
                raise ValueError(f"overhead_us.{kind} must be at least 0, got {value}")
        return self

    def kind_efficiency(self, kind: str, channels: Optional[int] = None) -> float:
        """The compute efficiency of a layer kind (its own, else that of the kind it refines, else 1),
        lowered for a layer of few output ``channels`` where the profile says so."""
        value = self.efficiency.get(kind, self.efficiency.get(FALLBACK_KIND.get(kind, kind), 1.0))
        half = self.half_efficiency_channels.get(kind, 0.0)
        return value * channels / (channels + half) if channels and half else value

    def kind_overhead_us(self, kind: str) -> float:
        """The fixed time of one layer of a kind: its own, else that of the kind it refines, else the launch overhead."""
        return self.overhead_us.get(kind, self.overhead_us.get(FALLBACK_KIND.get(kind, kind), self.launch_overhead_us))

    def flops(self, dtype: str) -> float:
        if dtype not in self.peak_flops:
            raise ScalelabError(f"device '{self.name}' has no {dtype} figure (it gives {', '.join(self.peak_flops)})")
        return self.peak_flops[dtype]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False, width=120)


def profiles_dir() -> Path:
    return Path(str(resources.files("scalelab.devices") / "profiles"))


def profile_names() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def parse_profile(text: str, filename: str = "<profile>") -> DeviceProfile:
    """Validate profile text; errors name file:line:col, the YAML path, the rule and the value."""
    from scalelab.spec.load import SourceMap, located_error

    try:
        root, data = yaml.compose(text), yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        raise ScalelabError(f"{where}: YAML syntax error: {getattr(exc, 'problem', None) or exc}") from None
    source = SourceMap(filename, root)
    if not isinstance(data, dict):
        raise ScalelabError(f"{filename}: a device profile must be a mapping (name, kind, peak_flops, ...)")
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # a misspelled key also shows up as a missing one: name the misspelling
        error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc, kind = tuple(error["loc"]), error["type"]
        if kind == "missing":
            loc, message = loc[:-1], f"missing required field '{loc[-1]}'"
        elif kind == "extra_forbidden":
            message = f"unknown field '{loc[-1]}'{did_you_mean(loc[-1], DeviceProfile.model_fields)}"
        elif kind.startswith("literal"):
            message = f"must be one of {error['ctx']['expected']} (got {error['input']!r})"
        elif kind == "value_error":
            message = str(error["ctx"]["error"])
        else:
            message = f"{error['msg']} (got {error['input']!r})"
        raise located_error(source, loc, f"device profile: {message}") from None


def load_profile(name_or_path: "str | Path") -> DeviceProfile:
    """A shipped profile by name (``t4``) or a profile YAML file (one written by ``scalelab calibrate``)."""
    path = Path(name_or_path)
    if not path.is_file():
        names = {n.lower(): n for n in profile_names()}  # names match in any case: T4 is t4
        name = names.get(str(name_or_path).lower())
        if name is None:
            close = difflib.get_close_matches(str(name_or_path).lower(), list(names), n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(repr(names[c]) for c in close)}?)" if close else ""
            raise ScalelabError(f"{name_or_path}: no such device profile file or name{hint}; "
                                f"`scalelab devices` lists them")
        path = profiles_dir() / f"{name}.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScalelabError(f"{path}: cannot read: {exc}") from None
    return parse_profile(text, str(path))
