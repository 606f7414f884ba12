"""Device profiles: what the latency roofline needs to know about a device, kept as YAML data.

A profile gives peak FLOP/s per dtype, the fraction of it real kernels reach, memory bandwidth and
the fraction of it reached, a per-kernel launch (dispatch) overhead, and optional compute efficiencies
per latency class (depthwise convolutions reach far less of the peak than dense ones) and per-class fixed
costs (on a CPU a depthwise convolution costs tens of microseconds however small its input; a ReLU a
few). Every datasheet figure carries its source.
"""

from __future__ import annotations

import difflib
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, Optional

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from scalelab.blocks.layers.base import KERNEL_CLASSES, LatencyClass
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.limits import MAX_SPEC_BYTES, quote
from scalelab.spec.load import SourceMap, located_error, read_text
from scalelab.spec.yaml_safe import parse_yaml

ComputeDtype = Literal["fp32", "tf32", "fp16", "bf16", "int8"]


def _launches_kernel(latency_class: LatencyClass) -> LatencyClass:
    if latency_class is LatencyClass.FREE:
        raise ValueError("'free' layers launch no kernel, so no figure applies to them: must be one of "
                         + ", ".join(KERNEL_CLASSES))
    return latency_class


#: a latency class a profile can give a figure for (its keys are validated against LatencyClass)
KernelClass = Annotated[LatencyClass, AfterValidator(_launches_kernel)]
#: a class a profile does not name takes the figure of the class it refines
FALLBACK_CLASS = {LatencyClass.STRIDED_DEPTHWISE_CONV: LatencyClass.DEPTHWISE_CONV,
                  LatencyClass.NORM: LatencyClass.ELEMENTWISE}
DATASHEET_FIGURES = ("peak_flops", "memory_bandwidth")
#: issue 20's regimes: host-bound (batch <= 8), the transition between, device-bound (batch >= 64)
Regime = Literal["host_bound", "transition", "device_bound"]
REGIME_WORDS = {"host_bound": "host-bound regime, batch <= 8", "transition": "transition regime, batch 9-63",
                "device_bound": "device-bound regime, batch >= 64"}
#: the error a prediction carries where its profile records none (an unvalidated profile)
UNVALIDATED_ERROR = 0.5


class RegimeError(BaseModel):
    """How wrong the profile's predictions are in one regime, and how that was found."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    stated: float = Field(gt=0, description="the error every prediction in this regime carries (fraction of the measured)")
    median: Optional[float] = Field(None, ge=0, description="held-out median absolute error on published rows; none: no data")
    rows: int = Field(0, ge=0, description="published rows the held-out error is over")
    networks: int = Field(0, ge=0, description="networks among them")
    basis: str = Field(description="how the error was obtained (or why there is no data)")


class DeviceProfile(BaseModel):
    # every figure is finite: a NaN peak would make every latency NaN, and NaN is not JSON
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str
    description: str = ""
    kind: Literal["gpu", "cpu"]
    peak_flops: dict[ComputeDtype, Annotated[float, Field(ge=1)]] = Field(min_length=1, description="peak FLOP/s (2 per multiply-add) per dtype")
    memory_bandwidth: float = Field(ge=1, description="bytes per second")
    achievable_compute: float = Field(gt=0, le=1, description="fraction of peak FLOP/s real kernels reach")
    achievable_bandwidth: float = Field(gt=0, le=1, description="fraction of the bandwidth real kernels reach")
    launch_overhead_us: float = Field(ge=0, description="fixed time per kernel (launch or dispatch), microseconds")
    efficiency: dict[KernelClass, float] = Field(
        default_factory=dict, description="per latency class, a multiplier (0-1] on achievable compute; default 1")
    overhead_us: dict[KernelClass, float] = Field(
        default_factory=dict, description="per latency class, fixed time per layer in microseconds; default launch_overhead_us")
    half_efficiency_channels: dict[KernelClass, float] = Field(
        default_factory=dict, description="per latency class, the output channels (features) at which a layer reaches half "
        "its kind's efficiency: efficiency x n / (n + this); thin matrix multiplies fill few vector registers")
    host_us: float = Field(0.0, ge=0, description="time the host takes to issue one operation in eager PyTorch (Python, "
                           "dispatcher, launch), microseconds; 0: no separate host (a CPU runs its ops itself)")
    errors: dict[Regime, RegimeError] = Field(
        default_factory=dict, description="held-out error per regime (host_bound, transition, device_bound)")
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
        for kind, value in self.efficiency.items():
            if not 0 < value <= 1:
                raise ValueError(f"efficiency.{kind} must be in (0, 1], got {value}")
        for kind, value in self.half_efficiency_channels.items():
            if value < 0:
                raise ValueError(f"half_efficiency_channels.{kind} must be at least 0, got {value}")
        for kind, value in self.overhead_us.items():
            if value < 0:
                raise ValueError(f"overhead_us.{kind} must be at least 0, got {value}")
        try:
            json.dumps(self.calibration, allow_nan=False, default=str)
        except ValueError:
            raise ValueError("calibration holds a NaN or infinite number; every figure must be finite") from None
        return self

    def class_efficiency(self, latency_class: LatencyClass, channels: Optional[int] = None) -> float:
        """The compute efficiency of a latency class (its own, else that of the class it refines,
        else 1), lowered for a layer of few output ``channels`` where the profile says so."""
        refined = FALLBACK_CLASS.get(latency_class, latency_class)
        value = self.efficiency.get(latency_class, self.efficiency.get(refined, 1.0))
        half = self.half_efficiency_channels.get(latency_class, 0.0)
        return value * channels / (channels + half) if channels and half else value

    def class_overhead_us(self, latency_class: LatencyClass) -> float:
        """The fixed time of one layer of a latency class: its own, else that of the class it
        refines, else the launch overhead."""
        refined = FALLBACK_CLASS.get(latency_class, latency_class)
        return self.overhead_us.get(latency_class, self.overhead_us.get(refined, self.launch_overhead_us))

    def flops(self, dtype: str) -> float:
        if dtype not in self.peak_flops:
            raise ScalelabError(f"device '{self.name}' has no {dtype} figure (it gives {', '.join(self.peak_flops)})")
        return self.peak_flops[dtype]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False, width=120)


def regime_error(profile: DeviceProfile, regime: str) -> tuple[float, str]:
    """The error a prediction in ``regime`` carries, and how it was obtained: the profile's held-out error
    for the regime, else its calibration's leave-one-out error, else a wide default said to be one."""
    found = profile.errors.get(regime)  # type: ignore[call-overload]
    if found is not None:
        return found.stated, f"{found.basis}; {REGIME_WORDS[regime]}"
    c = profile.calibration or {}
    if "held_out_median_error" in c:
        return (max(float(c["held_out_median_error"]), 0.01),
                f"leave-one-out median error on {c.get('synthetic_networks', 'its')} synthetic networks (calibrate)")
    return UNVALIDATED_ERROR, f"profile {profile.name} records no held-out error: a wide default, not validated"


def profiles_dir() -> Path:
    return Path(str(resources.files("scalelab.devices") / "profiles"))


def profile_names() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def _boolean(data: dict) -> Optional[tuple]:
    """Where a profile gives true or false: it has no flags, and pydantic would read true as 1.0."""
    for key, value in data.items():
        if isinstance(value, bool):
            return (key,)
        if isinstance(value, dict) and key != "calibration":
            inner = next((k for k, v in value.items() if isinstance(v, bool)), None)
            if inner is not None:
                return (key, inner)
    return None


def parse_profile(text: str, filename: str = "<profile>") -> DeviceProfile:
    """Validate profile text; errors name file:line:col, the YAML path, the rule and the value."""
    root, data = parse_yaml(text, filename)
    source = SourceMap(filename, root)
    if not isinstance(data, dict):
        raise ScalelabError(f"{filename}: a device profile must be a mapping (name, kind, peak_flops, ...)")
    flag = _boolean(data)
    if flag:
        raise located_error(source, flag, "device profile: must be a number; true and false are not numbers")
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # a misspelled key also shows up as a missing one: name the misspelling, then what is missing
        error = next((e for kind in ("extra_forbidden", "missing") for e in errors if e["type"] == kind), errors[0])
        loc, kind = tuple(error["loc"]), error["type"]
        if kind == "missing":
            loc, message = loc[:-1], f"missing required field '{loc[-1]}'"
        elif kind == "extra_forbidden":
            message = f"unknown field '{loc[-1]}'{did_you_mean(loc[-1], DeviceProfile.model_fields)}"
        elif kind.startswith("literal"):
            message = f"must be one of {error['ctx']['expected']} (got {quote(error['input'])})"
        elif kind == "enum":  # a latency class key
            message = (f"unknown latency class {quote(error['input'])}{did_you_mean(error['input'], KERNEL_CLASSES)}: "
                       f"must be one of {', '.join(KERNEL_CLASSES)}")
        elif kind == "value_error":
            message = str(error["ctx"]["error"])
        else:
            message = f"{error['msg']} (got {quote(error['input'])})"
        raise located_error(source, loc, f"device profile: {message}") from None


def unknown_profile(name_or_path: "str | Path") -> Optional[str]:
    """Why ``name_or_path`` is neither a profile file nor a shipped profile's name, or None where it is one."""
    if Path(name_or_path).is_file():
        return None
    names = {n.lower(): n for n in profile_names()}  # names match in any case: T4 is t4
    if str(name_or_path).lower() in names:
        return None
    close = difflib.get_close_matches(str(name_or_path).lower(), list(names), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(repr(names[c]) for c in close)}?)" if close else ""
    return f"{quote(str(name_or_path), 80)}: no such device profile file or name{hint}; `scalelab devices` lists them"


def load_profile(name_or_path: "str | Path") -> DeviceProfile:
    """A shipped profile by name (``t4``) or a profile YAML file (one written by ``scalelab calibrate``)."""
    path = Path(name_or_path)
    if not path.is_file():
        why = unknown_profile(name_or_path)
        if why is not None:
            raise ScalelabError(why)
        name = next(n for n in profile_names() if n.lower() == str(name_or_path).lower())
        path = profiles_dir() / f"{name}.yaml"
    return parse_profile(read_text(path, MAX_SPEC_BYTES), str(path))
