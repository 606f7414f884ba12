"""What the search optimises: the MnasNet reward, budget feasibility, and the Pareto front.

MnasNet (Tan et al., CVPR 2019, eq. 2): reward = ACC(m) x [COST(m) / T]^w with w = alpha if
COST(m) <= T else beta. Soft constraint: alpha = beta = -0.07 (the EfficientNet-B0 search used it
with T = 400M FLOPs). Hard constraint: alpha = 0, beta = -1; scalelab also hands the budget to
Optuna's constraint API, so the sampler learns where the feasible region is.
With several budgets the reward multiplies one factor per budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Iterable, Literal, Sequence, TypeVar

from scalelab.scaling.budget import Budget

Constraint = Literal["hard", "soft"]

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
