"""How busy the machine is while scalelab times something, and whether what it kept has settled.

Two different things make a timing uncertain, and they call for different remedies:
  * **competing load**: the CPU time other processes took during the measurement, in CPUs
    (``/proc/stat`` busy time of the whole machine minus this process's own CPU time, over the
    wall-clock window). Unlike the 1-minute load average it is exact for the window and reacts at
    once; where ``/proc/stat`` is missing, the load average less this process stands in for it.
    Other processes' work is a reason to wait (back-off) and, if it stays, to refuse.
  * **jitter**: an idle virtual machine still varies by ~30% from round to round (frequency
    scaling, a neighbour on the host, the hypervisor). That is a reason to measure more, not to
    refuse: ``scalelab.analysis.measure`` runs more, shorter, interleaved rounds and keeps the lowest
    round median, until that kept figure is *settled*: the lowest round median of the odd rounds and
    that of the even rounds agree within a stated tolerance (``unsettled``, time-weighted over what
    was timed). How far rounds disagree (the typical round median above the kept one) is recorded,
    not acted on.
A measurement is clean when the load is within ``NoiseLimits.max_other_cpus`` and the kept figure
settled within ``NoiseLimits.max_spread``; scalelab waits and measures again under load, measures
again at once when the figure has not settled, and refuses naming what stayed beyond its limit.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Optional, TypeVar

from scalelab.errors import ScalelabError

T = TypeVar("T")

#: default limits, documented in the README ("Measuring on a busy machine")
MAX_OTHER_CPUS = 0.5  # other processes may use at most half a CPU while we time
SETTLE = 0.02  # measuring more stops once the kept figure moves by at most 2% between halves of the rounds
MAX_SPREAD = 0.05  # a kept figure that still moves by more than 5% once the rounds are spent is measured again
BACKOFF_S = (1.0, 2.0, 4.0)  # waits before the 2nd, 3rd and 4th attempt (competing load only)


@dataclass(frozen=True)
class NoiseLimits:
    max_other_cpus: float = MAX_OTHER_CPUS
    max_spread: float = MAX_SPREAD  # the most the kept figure may still move (``Noise.spread``)
    backoff_s: tuple[float, ...] = BACKOFF_S


def _busy_and_own() -> Optional[tuple[float, float]]:
    """(seconds of CPU time the whole machine spent busy, of it this process's own), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    busy = sum(ticks) - ticks[3] - ticks[4]
    own = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


class LoadWindow:
    """Context manager: ``other_cpus`` = CPUs other processes kept busy while it was open."""

    def __enter__(self) -> "LoadWindow":
        self._start = _busy_and_own()
        self._wall = time.perf_counter()
        self.other_cpus = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._wall
        end = _busy_and_own()
        if self._start is None or end is None or wall <= 0:
            self.other_cpus = max(0.0, os.getloadavg()[0] - 1.0)  # the load average less ourselves
            return
        others = (end[0] - self._start[0]) - (end[1] - self._start[1])
        self.other_cpus = max(0.0, others / wall)


def idle_load(seconds: float = 0.5) -> float:
    """CPUs other processes keep busy while this one sleeps for ``seconds``."""
    with LoadWindow() as window:
        time.sleep(seconds)
    return window.other_cpus


@dataclass(frozen=True)
class Noise:
    """What one attempt saw: the competing load (CPUs), how far the kept figure still moves between
    halves of the rounds (``spread``, a fraction) and how far rounds disagree (recorded only)."""

    other_cpus: float
    spread: float
    disagreement: float = 0.0

    def loaded(self, limits: NoiseLimits) -> bool:
        return self.other_cpus > limits.max_other_cpus

    def problems(self, limits: NoiseLimits) -> list[str]:
        found = []
        if self.loaded(limits):
            found.append(f"other processes kept {self.other_cpus:.2f} CPUs busy (limit {limits.max_other_cpus:g})")
        if self.spread > limits.max_spread:
            found.append(f"the kept timings did not settle: they still move by {self.spread:.1%} between halves of "
                         f"the rounds (limit {limits.max_spread:.0%})")
        return found


class NoisyMachine(ScalelabError):
    """Every attempt was too noisy: the message names the load or the unsettled figure of the last one."""


def until_quiet(attempt: Callable[[], tuple[T, Noise]], what: str, limits: NoiseLimits,
                allow_noisy: bool = False, sleep: Optional[Callable[[float], None]] = None,
                on_wait: Optional[Callable[[str], None]] = None) -> tuple[T, Noise]:
    """Run ``attempt`` (which returns its result and the noise it saw) until its noise is within
    ``limits``: under competing load after a wait of ``limits.backoff_s`` (``on_wait`` is told why
    and how long), for a figure that has not settled at once (waiting does not calm jitter; measuring
    more does). With ``allow_noisy`` the last result is returned however noisy; otherwise
    ``NoisyMachine`` names what stayed too high and the time it all took, measuring included."""
    sleep = sleep or _sleep
    waits = list(limits.backoff_s)
    waited, start = 0.0, _clock()
    tries = len(waits) + 1
    while True:
        result, noise = attempt()
        problems = noise.problems(limits)
        if not problems:
            return result, noise
        if not waits:
            if allow_noisy:
                return result, noise
            raise NoisyMachine(_refusal(what, noise, limits, tries, waited, _clock() - start))
        backoff = waits.pop(0)
        wait = backoff if noise.loaded(limits) else 0.0  # jitter: waiting does not calm it, measuring more does
        (on_wait or _notice)(f"{what}: {' and '.join(problems)}; attempt {tries - len(waits)} of {tries}"
                             + (f" in {wait:g} s" if wait else ", measuring more"))
        if wait:
            sleep(wait)
        waited += wait


def _refusal(what: str, noise: Noise, limits: NoiseLimits, tries: int, waited: float, took: float) -> str:
    problems = " and ".join(noise.problems(limits))
    spent = f"after {tries} attempts in {took:.0f} s ({waited:.0f} s of it waiting between attempts)"
    if noise.loaded(limits):
        return (f"{what}: the machine is too busy to measure: {problems}, {spent}. Stop the competing work and run "
                f"again, or pass --allow-noisy to keep a measurement marked noisy")
    return (f"{what}: the timings never settled: {problems}, {spent}; no other process was competing, so this "
            f"machine's own jitter stayed beyond the limit. Pass --allow-noisy to keep a measurement marked noisy")


def _notice(text: str) -> None:
    """A wait no bar shows (calibrate's): one line on stderr when it is a terminal (above a bar that
    is drawn there), nothing when piped."""
    import sys

    from scalelab import progress  # start-up: --help loads this module, not the progress display

    if progress.shown():
        print(text, file=sys.stderr, flush=True)


# looked up at each call, so that tests can stand in a clock for both
_clock = time.monotonic
_sleep = time.sleep
