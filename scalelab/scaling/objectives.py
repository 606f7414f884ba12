"""What the search optimises: the MnasNet reward, budget feasibility, and the Pareto front.

MnasNet (Tan et al., CVPR 2019, eq. 2): reward = ACC(m) x [COST(m) / T]^w with w = alpha if
COST(m) <= T else beta. Soft constraint: alpha = beta = -0.07 (the EfficientNet-B0 search used it
with T = 400M FLOPs). Hard constraint: alpha = 0, beta = -1; scalelab also hands the budget to
Optuna's constraint API, so the sampler learns where the feasible region is.
With several budgets the reward multiplies one factor per budget.

``Objective`` is the one place that knows what each ``--objective`` means to the search: its Optuna
directions, what a trial reports, the figure recorded and ranked, and whether trials may be pruned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Iterable, Literal, Sequence, TypeVar, Union

from scalelab.errors import ScalelabError
from scalelab.scaling.budget import Budget

if TYPE_CHECKING:
    from scalelab.scaling.candidates import Candidate

Constraint = Literal["hard", "soft"]
#: an Optuna study direction, one per value a trial reports
Direction = Literal["maximize", "minimize"]
ObjectiveName = Literal["reward", "pareto"]

HARD_EXPONENTS = (0.0, -1.0)


def exponents(constraint: Constraint, soft_w: float = -0.07) -> tuple[float, float]:
    return HARD_EXPONENTS if constraint == "hard" else (soft_w, soft_w)


def mnas_reward(accuracy: float, usages: Sequence[float], constraint: Constraint = "hard",
                soft_w: float = -0.07) -> float:
    """ACC x prod (cost_i / T_i)^w_i, ``usages`` being cost_i / T_i for each budget."""
    below, above = exponents(constraint, soft_w)
    reward = accuracy
    for usage in usages:
        reward *= usage ** (below if usage <= 1.0 else above)
    return reward


def violations(budgets: Sequence[Budget], metrics: dict) -> list[float]:
    """Optuna constraint values, one per budget: <= 0 within, > 0 relative overshoot."""
    return [b.violation(metrics[b.metric]) for b in budgets]


def feasible(budgets: Sequence[Budget], metrics: dict) -> bool:
    return all(metrics[b.metric] <= b.limit for b in budgets)


@dataclass(frozen=True)
class Objective:
    """What a search optimises: ``reward``, the MnasNet reward under every budget (one direction), or
    ``pareto``, accuracy against the first budget's cost (two directions; the budgets are always hard,
    and the best candidate is the most accurate one within them)."""

    name: ObjectiveName
    budgets: tuple[Budget, ...]
    constraint: Constraint = "hard"
    soft_w: float = -0.07

    @property
    def _pareto(self) -> bool:
        return self.name == "pareto"

    @property
    def directions(self) -> list[Direction]:
        return ["maximize", "minimize"] if self._pareto else ["maximize"]

    @property
    def prunable(self) -> bool:
        return not self._pareto  # Optuna prunes single-objective studies only

    @property
    def constrained(self) -> bool:
        """Whether the budgets reach the sampler through Optuna's constraint API."""
        return self.constraint == "hard" or self._pareto

    @property
    def default_method(self) -> str:
        return "direct" if self._pareto else "two-step"

    @property
    def label(self) -> str:
        """Its part of a default study name: 'pareto', or the constraint of the reward."""
        return "pareto" if self._pareto else self.constraint

    def check_method(self, method: str) -> None:
        if self._pareto and method != "direct":
            raise ScalelabError("the Pareto objective applies to the direct search; the two-step method picks phi by the budget")

    def score(self, c: Candidate) -> float:
        """The one figure recorded with a candidate and ranked by: the reward, or the accuracy."""
        if self._pareto:
            return c.accuracy
        usages = [b.usage(c.metrics[b.metric]) for b in self.budgets]
        return mnas_reward(c.accuracy, usages, self.constraint, self.soft_w)

    def value(self, c: Candidate) -> Union[float, tuple[float, float]]:
        """What a trial reports to Optuna, one figure per direction."""
        if self._pareto:
            return c.accuracy, float(c.metrics[self.budgets[0].metric])
        return self.score(c)

    def rank(self, score: float, c: Candidate) -> tuple[float, float]:
        """The ranking key (higher is better) of a candidate with this score: less cost breaks ties,
        of the first budget's metric for Pareto, of MACs for the reward."""
        cost = c.metrics[self.budgets[0].metric] if self._pareto else c.macs
        return score, -cost

    def key(self, c: Candidate) -> tuple[float, float]:
        return self.rank(self.score(c), c)


Key = TypeVar("Key")


@dataclass(frozen=True)
class Point(Generic[Key]):
    """A candidate on the accuracy/cost plane, with whatever identifies it (a trial, a number)."""

    cost: float
    accuracy: float
    key: Key


def pareto_front(points: Iterable[Point[Key]]) -> list[Point[Key]]:
    """The points no other point beats on both axes (lower cost and higher accuracy), by cost.

    A point is dominated when another has cost <= and accuracy >= with at least one strict."""
    ordered = sorted(points, key=lambda p: (p.cost, -p.accuracy))
    front: list[Point[Key]] = []
    best = float("-inf")
    for p in ordered:
        if p.accuracy > best:  # equal costs come best-first, so the rest of them are dominated
            front.append(p)
            best = p.accuracy
    return front
