"""What `scalelab scale` is told: its choices, and its options grouped by the part of the work that
uses them, each group a frozen dataclass built once from the parsed command line (``groups.pick``;
the field names are the command's parameter names)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Optional

DEFAULT_BASE = "efficientnet_b0"
DEFAULT_REPORT_DIR = Path("scalelab-reports")


class Method(str, Enum):
    direct = "direct"
    two_step = "two-step"


class ObjectiveKind(str, Enum):
    reward = "reward"
    pareto = "pareto"


class ConstraintKind(str, Enum):
    hard = "hard"
    soft = "soft"


class AccuracyMethod(str, Enum):
    scaling_law = "scaling-law"
    published = "published"
    proxy = "proxy"
    train = "train"


class SamplerKind(str, Enum):
    tpe = "tpe"
    random = "random"
    nsga2 = "nsga2"
    gp = "gp"


class FlopsConventionKind(str, Enum):
    paper = "paper"
    hardware = "hardware"


class Extrapolation(str, Enum):
    avoid = "avoid"
    allow = "allow"


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


@dataclass(frozen=True)
class ApplyOptions:
    """One scaling applied (``--phi``, or ``--depth/--width/--resolution``)."""

    phi: Optional[float]
    depth: Optional[float]
    width: Optional[float]
    resolution: Optional[int]
    alpha: float
    beta: float
    gamma: float
    divisor: int
    resolution_multiple: int
    output: Optional[Path]
    format: OutputFormat

    @property
    def applying(self) -> bool:
        return any(v is not None for v in (self.phi, self.depth, self.width, self.resolution))


@dataclass(frozen=True)
class PricingOptions:
    """How the search prices a candidate: its budgets, costs and accuracy (``Evaluator``)."""

    budget: list[str]
    flops_convention: FlopsConventionKind
    device: Optional[str]
    dtype: str
    batch: int
    divisor: int
    resolution_multiple: int
    accuracy: AccuracyMethod
    data: Optional[Path]
    epochs: int
    seed: int


@dataclass(frozen=True)
class SearchOptions:
    """What the search looks for and where (``SearchSettings``)."""

    method: Optional[Method]
    objective: ObjectiveKind
    constraint: ConstraintKind
    reward_exponent: float
    trials: int
    seed: int
    sampler: SamplerKind
    extrapolation: Extrapolation
    min_depth: float
    max_depth: float
    min_width: float
    max_width: float
    min_resolution: float
    max_resolution: float
    ensembles: tuple[int, ...]
    crops: tuple[int, ...]
    product_tolerance: float
    phi_step: float


@dataclass(frozen=True)
class StudyOptions:
    """Where the study lives and who works on it."""

    storage: Optional[str]
    study: Optional[str]
    workers: int
    heartbeat: int
    worker_of: Optional[int]
    progress: Optional[bool]

    @property
    def helper(self) -> bool:
        """A process `scale --workers` started: it runs trials only, its parent reports."""
        return self.worker_of is not None

    @property
    def shared(self) -> bool:
        """Whether another process may work on the study: then it is written trial by trial, and a
        private SQLite file in batches."""
        return self.storage is not None or self.workers > 1 or self.helper

    @property
    def shows_progress(self) -> bool:
        if self.helper:
            return False
        return sys.stderr.isatty() if self.progress is None else self.progress

    def url(self, report_dir: Path) -> str:
        return self.storage or f"sqlite:///{report_dir / 'studies.db'}"


@dataclass(frozen=True)
class ReportOptions:
    """What the search writes and prints once it is done."""

    output: Optional[Path]
    report_dir: Path
    charts: bool
    format: OutputFormat
    top: int
