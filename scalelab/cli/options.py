"""Parsers for the numeric and device options of every command, checked while the command line is
read: a bad value exits 2 naming the option, before any work starts.

Floats are finite (``nan``, ``inf`` and ``1e999`` are refused) and within their meaning; counts are
whole numbers within the bounds of ``scalelab.limits`` (README, "Bounds"). Use them as
``typer.Option(..., parser=options.PHI)``; typer reports the message of the error a parser raises.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional

from scalelab.limits import (
    MAX_BATCH, MAX_CHANNELS, MAX_COUNT_CHOICES, MAX_CROPS, MAX_ENSEMBLE, MAX_REPEAT, MAX_RESOLUTION, quote,
)


def _refuse(message: str) -> Exception:
    # typer validates options with pydantic and shows this message as it is; imported only on a bad
    # value, so that `scalelab --help` stays free of pydantic
    from pydantic_core import PydanticCustomError

    return PydanticCustomError("scalelab_option", message.replace("{", "(").replace("}", ")"))


def _number(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


class FiniteFloat:
    """A finite number in [low, high]; ``open_low`` makes the lower bound exclusive (> low)."""

    def __init__(self, low: Optional[float] = None, high: Optional[float] = None, *, open_low: bool = False):
        self.low, self.high, self.open_low = low, high, open_low

    def _range(self) -> str:
        if self.low is None:
            return f"at most {_number(self.high)}"
        lower = f"greater than {_number(self.low)}" if self.open_low else f"at least {_number(self.low)}"
        return lower if self.high is None else f"{lower} and at most {_number(self.high)}"

    def __call__(self, value) -> float:
        if isinstance(value, bool):
            raise _refuse(f"{value} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise _refuse(f"{quote(value, 40)} is not a number") from None
        if not math.isfinite(number):
            raise _refuse(f"{quote(value, 40)} is not a finite number")
        too_low = self.low is not None and (number <= self.low if self.open_low else number < self.low)
        if too_low or (self.high is not None and number > self.high):
            raise _refuse(f"must be {self._range()}, got {quote(value, 40)}")
        return number


class Count:
    """A whole number in [low, high], written as one ("2.0" and "1e3" are refused)."""

    def __init__(self, low: int, high: int):
        self.low, self.high = low, high

    def __call__(self, value) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,30}\s*", value):
            number = int(value)
        else:
            raise _refuse(f"{quote(value, 40)} is not a whole number")
        if not self.low <= number <= self.high:
            raise _refuse(f"must be between {self.low:,} and {self.high:,}, got {quote(value, 40)}")
        return number


class CountList:
    """Comma-separated whole numbers in [low, high], at most ``MAX_COUNT_CHOICES`` of them ('1,2,3'),
    returned sorted without repeats; an empty entry ('1,,2') is refused, not skipped."""

    def __init__(self, low: int, high: int, example: str):
        self.low, self.high, self.example = low, high, example

    def __call__(self, value) -> tuple[int, ...]:
        if isinstance(value, tuple):  # the default, already read
            return value
        parts = str(value).split(",")
        if any(not p.strip() for p in parts):
            raise _refuse(f"expected whole numbers separated by commas such as {self.example}, got {quote(value, 40)}")
        where = f" in {quote(value, 40)}" if len(parts) > 1 else ""
        counts = set()
        for part in parts:
            if not re.fullmatch(r"\s*\d{1,30}\s*", part):
                raise _refuse(f"{quote(part.strip(), 40)} is not a whole number{where} (expected e.g. {self.example})")
            if not self.low <= int(part) <= self.high:
                raise _refuse(f"must be between {self.low:,} and {self.high:,}, got {quote(part.strip(), 40)}{where}")
            counts.add(int(part))
        if len(counts) > MAX_COUNT_CHOICES:
            raise _refuse(f"at most {MAX_COUNT_CHOICES} values, got {len(counts)}{where}")
        return tuple(sorted(counts))


def torch_device(value) -> str:
    """Where torch runs: cpu, cuda or cuda:N. CUDA is checked here (torch is imported only then)."""
    text = str(value).strip()
    match = re.fullmatch(r"cpu|cuda(?::(\d{1,3}))?", text)
    if not match:
        raise _refuse(f"expected cpu, cuda or cuda:N, got {quote(value, 40)}")
    if text != "cpu":
        import torch

        if not torch.cuda.is_available():
            raise _refuse(f"{text}: torch finds no CUDA device on this machine; use cpu")
        if int(match.group(1) or 0) >= torch.cuda.device_count():
            raise _refuse(f"{text}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0")
    return text


def existing_folder(value) -> Path:
    """A folder that exists, checked before any work starts."""
    path = Path(value)
    if not path.is_dir():
        raise _refuse(f"{quote(str(value), 80)}: " + ("not a folder" if path.exists() else "no such folder"))
    return path


#: a multiplier of depth or width: above 0, at most the bound of what it multiplies
DEPTH_MULTIPLIER = FiniteFloat(0, MAX_REPEAT, open_low=True)
WIDTH_MULTIPLIER = FiniteFloat(0, MAX_CHANNELS, open_low=True)
RESOLUTION_MULTIPLIER = FiniteFloat(0, MAX_RESOLUTION, open_low=True)
#: EfficientNet's phi; 1.2^20 is a depth of 38x, far beyond the published B7 (phi = 7)
PHI = FiniteFloat(-20, 20)
#: alpha, beta, gamma of compound scaling (at least 1: EfficientNet eq. 3)
COEFFICIENT = FiniteFloat(1, 10)
NON_NEGATIVE = FiniteFloat(0, 1e6)
#: the exponent w of MnasNet's reward
EXPONENT = FiniteFloat(-10, 10)
BATCH = Count(1, MAX_BATCH)
PIXELS = Count(1, MAX_RESOLUTION)
DIVISOR = Count(1, MAX_CHANNELS)
TRIALS = Count(1, 10**6)
EPOCHS = Count(1, 10**4)
CROPS = Count(1, MAX_CROPS)
#: `scale --ensembles 1,2,3` and `--crops 1,10`: the ensemble sizes and test-crop counts searched
ENSEMBLE_SIZES = CountList(1, MAX_ENSEMBLE, "1,2,3")
CROP_COUNTS = CountList(1, MAX_CROPS, "1,10")
IMAGES = Count(1, 10**12)
SEED = Count(0, 2**32 - 1)  # numpy's seeds
ROWS = Count(1, 10**6)
DEVICE = torch_device
DATA_FOLDER = existing_folder
