"""The channel counts of a wired network as terms, for width scaling: a count a block states freely
(a conv's ``out``) is a ``Free`` count; a count the wiring ties to others is an expression of them
(a concatenation's is their ``Sum``, a depthwise conv's is its input's times its multiplier). Both
sides of an add are unified, so they scale to one count by one rounding; a free count unified with
an expression takes that expression's value. Values are worked out once every tie is known."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Union

from scalelab.errors import ScalelabError
from scalelab.scaling.rounding import round_channels


@dataclass(frozen=True)
class Free:
    """A channel count some block states: scaled by the multiplier unless a tie binds it."""

    id: int


@dataclass(frozen=True)
class Fixed:
    """A count width scaling never changes (the input image's channels, a classifier's classes)."""

    value: int


@dataclass(frozen=True)
class Sum:
    """A concatenation's channels: the sum of its inputs'."""

    parts: tuple["Term", ...]


@dataclass(frozen=True)
class Ratio:
    """``term x num / den`` (a depthwise conv with a channel multiplier, a grouped conv keeping its
    group width); divisibility of ``term`` by ``den`` is required when the ratio is made."""

    term: "Term"
    num: int
    den: int


@dataclass(frozen=True, eq=False)
class Derived:
    """A count a block derives from its inputs' scaled shapes (a flatten's, a linear's): worked out
    by running the block on them, once their values are known."""

    compute: Callable[[], int]
    block: str


Term = Union[Free, Fixed, Sum, Ratio, Derived]


class Ties:
    """Free counts, their unions and bindings, the divisors they must keep, and the checks that
    only values can settle."""

    def __init__(self, width: float, divisor: int) -> None:
        self.width, self.divisor = width, divisor
        self.parent: list[int] = []
        self.base: list[int] = []
        self.passive: list[bool] = []  # a learned tensor's size: never free, only tied
        self.divs: list[int] = []
        self.bound: dict[int, Term] = {}
        self.where: dict[int, str] = {}  # the join that bound each bound count
        self.equal: list[tuple[Term, Term, str]] = []  # settled by value: neither side free
        self.kept: list[tuple[Term, int, str]] = []  # a block stating sizes: its input must keep its channels
        self.why: dict[int, str] = {}  # by index into ``kept``: why the block cannot restate its sizes
        self._values: dict[int, int] = {}
        self._busy: set[int] = set()

    def free(self, base: int, passive: bool = False) -> Free:
        self.parent.append(len(self.parent))
        self.base.append(base)
        self.passive.append(passive)
        self.divs.append(1)
        return Free(len(self.parent) - 1)

    def root(self, f: Free) -> int:
        i = f.id
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def is_open(self, term: Term) -> bool:
        """Whether ``term`` is a free count nothing binds yet (a join can bind it to an expression)."""
        return self._open(term) is not None

    def _open(self, term: Term) -> "int | None":
        """The root of a free count nothing binds yet, else None."""
        if isinstance(term, Free):
            r = self.root(term)
            return None if r in self.bound else r
        return None

    def _mentions(self, term: Term, r: int) -> bool:
        if isinstance(term, Free):
            rr = self.root(term)
            return rr == r or (rr in self.bound and self._mentions(self.bound[rr], r))
        if isinstance(term, Sum):
            return any(self._mentions(p, r) for p in term.parts)
        return isinstance(term, Ratio) and self._mentions(term.term, r)

    def unify(self, a: Term, b: Term, block: str) -> None:
        """``a`` and ``b`` are the channels of tensors an element-wise block joins: one count."""
        ra, rb = self._open(a), self._open(b)
        if ra is not None and rb is not None:
            if ra != rb:
                keep, gone = (ra, rb) if self.passive[rb] or not self.passive[ra] else (rb, ra)
                self.parent[gone] = keep
                self.passive[keep] = self.passive[keep] and self.passive[gone]
                self.divs[keep] = math.lcm(self.divs[keep], self.divs[gone])
            return
        if ra is None and rb is not None:
            a, b, ra = b, a, rb
        # a derived count may be worked out from this very count (a body that expands and projects
        # back): only its value can settle it, so it is checked, never bound
        if ra is not None and not isinstance(b, Derived) and not self._mentions(b, ra):
            self.bound[ra], self.where[ra] = b, block
            self.require(b, self.divs[ra], block)
            return
        self.equal.append((a, b, block))

    def require(self, term: Term, k: int, block: str) -> None:
        """``term``'s value must be a multiple of ``k`` (the group width of a conv reading it)."""
        if k <= 1:
            return
        if isinstance(term, Free):
            r = self.root(term)
            if r in self.bound:
                self.require(self.bound[r], k, block)
            else:
                self.divs[r] = math.lcm(self.divs[r], k)
        elif isinstance(term, Sum):
            for p in term.parts:
                self.require(p, k, block)
        elif isinstance(term, Ratio):
            self.require(term.term, k * term.den // math.gcd(term.num, k * term.den), block)
        else:  # a fixed or derived count: only its value can tell
            self.kept.append((term, -k, block))

    def keep(self, term: Term, base: int, block: str, why: str = "") -> None:
        """A block stating fixed sizes reads ``term``: its value must stay ``base`` (``why``: the
        reason the block cannot restate them, for the refusal)."""
        if why:
            self.why[len(self.kept)] = why
        self.kept.append((term, base, block))

    def value(self, term: Term) -> int:
        if isinstance(term, Fixed):
            return term.value
        if isinstance(term, Sum):
            return sum(self.value(p) for p in term.parts)
        if isinstance(term, Ratio):
            return self.value(term.term) * term.num // term.den
        if isinstance(term, Derived):
            return term.compute()
        r = self.root(term)
        if r not in self._values:
            if r in self._busy:
                raise ScalelabError(f"block {self.where[r]}: width scaling cannot settle the channels it joins: "
                                    f"each side's count depends on the other's")
            self._busy.add(r)
            if r in self.bound:
                self._values[r] = self.value(self.bound[r])
            elif self.passive[r]:
                self._values[r] = self.base[r]
            else:
                self._values[r] = round_channels(self.base[r], self.width, math.lcm(self.divisor, self.divs[r]))
            self._busy.discard(r)
        return self._values[r]

    def check(self) -> None:
        """The ties only values settle: joined sides equal, stated sizes kept, group widths divided."""
        for a, b, block in self.equal:
            va, vb = self.value(a), self.value(b)
            if va != vb:
                raise ScalelabError(f"block {block}: width scaling gives the tensors it joins {va} and {vb} "
                                    f"channels, which it cannot make equal (one of them is fixed by other blocks)")
        for i, (term, base, block) in enumerate(self.kept):
            v = self.value(term)
            if base < 0 and v % -base:
                raise ScalelabError(f"block {block}: its {v} input channels after width scaling are not a "
                                    f"multiple of its group width {-base}")
            if base > 0 and v != base:
                raise ScalelabError(f"block {block} states fixed sizes of a tensor whose channels width scaling "
                                    f"changes from {base} to {v} at width x{self.width:g}; width scaling cannot "
                                    f"restate them{self.why.get(i, '')}, so it refuses this spec")
