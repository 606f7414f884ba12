"""The execution order of a network's blocks with the lowest inference activation peak: an exact
search over the sets of executed blocks, or a greedy order where that search would be too large."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Optional

from scalelab.analysis.memory_inference import Dag
from scalelab.analysis.memory_units import check_kernel, dtype_bytes
from scalelab.graph.network import Network

#: exact search over execution orders visits at most this many sets of executed blocks
EXACT_STATE_LIMIT = 200_000


@dataclass(frozen=True)
class BestOrder:
    order: tuple[str, ...]
    peak_bytes: int
    exact: bool  # True: no execution order has a lower peak; False: found greedily


def best_order(network: Network, dtype: str = "fp32", batch: int = 1,
               state_limit: int = EXACT_STATE_LIMIT, attention_kernel: str = "math") -> BestOrder:
    """An execution order with the lowest activation peak.

    Exact: a memoised search over the sets of executed blocks (the peak from a set onwards depends
    only on the set), minimising the largest step. It gives up past ``state_limit`` sets and falls
    back to a greedy order (run the ready block whose step is smallest, then the one that frees most)."""
    check_kernel(attention_kernel)
    dag = Dag(network, dtype_bytes(dtype), batch, attention_kernel)
    memo: dict[frozenset, tuple[int, Optional[str]]] = {}
    everything = frozenset(dag.names)

    def solve(done: frozenset) -> Generator[frozenset, tuple[int, Optional[str]], tuple[int, Optional[str]]]:
        """The best (peak, next block) from ``done`` on; it yields each set it needs solved first."""
        if done == everything:
            return 0, None
        if done in memo:
            return memo[done]
        if len(memo) >= state_limit:
            raise _TooMany
        best: tuple[Optional[int], Optional[str]] = (None, None)
        for name in dag.ready(done):
            here = dag.step(done, name)
            if best[0] is not None and here >= best[0]:
                continue
            rest, _ = yield done | {name}
            cost = max(here, rest)
            if best[0] is None or cost < best[0]:
                best = (cost, name)
        assert best[0] is not None  # a set short of everything has a ready block
        memo[done] = (best[0], best[1])
        return memo[done]

    try:
        peak, _ = _run_nested(solve, frozenset())
        order: list[str] = []
        done: frozenset[str] = frozenset()
        while done != everything:
            name = memo[done][1]
            assert name is not None  # every set short of everything was solved with a next block
            order.append(name)
            done = done | {name}
        return BestOrder(tuple(order), peak, True)
    except _TooMany:
        greedy = _greedy(dag)
        return BestOrder(tuple(greedy), max(dag.trace(greedy)), False)


def _run_nested(solve: Callable[[Any], Generator[Any, Any, Any]], root: Any) -> Any:
    """``solve(root)`` where ``solve`` is written as a recursion that yields each sub-problem and is
    sent its answer: the calls are kept on a list, not on Python's stack, so a network of thousands
    of blocks needs no raised recursion limit."""
    stack, answer = [solve(root)], None
    while stack:
        try:
            sub = stack[-1].send(answer)
        except StopIteration as finished:
            stack.pop()
            answer = finished.value
            continue
        stack.append(solve(sub))
        answer = None
    return answer


class _TooMany(Exception):
    pass


def _greedy(dag: Dag) -> list[str]:
    done: frozenset[str] = frozenset()
    order: list[str] = []
    while len(order) < len(dag.names):
        name = min(dag.ready(done), key=lambda n: (dag.step(done, n), dag.alive_after(done | {n})))
        order.append(name)
        done = done | {name}
    return order
