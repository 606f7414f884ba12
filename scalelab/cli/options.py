"""Parsers for the numeric and device options of every command, checked while the command line is
read: a bad value exits 2 naming the option, before any work starts.

Floats are finite (``nan``, ``inf`` and ``1e999`` are refused) and within their meaning; counts are
whole numbers within the bounds of ``scalelab.limits`` (README, "Bounds"); names and other text are
non-empty and bounded; a word from a fixed list is one of them. Use them as
``typer.Option(..., parser=options.PHI)``; typer reports the message of the error a parser raises.
Every option but a flag or an Enum choice has one (tests/test_option_parsers.py checks it), so that
no value is taken as a default or found wrong only once the work has started.
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from pathlib import Path
from typing import Optional

from scalelab.analysis.memory import OPTIMIZER_STATES, dtype_bytes
from scalelab.devices.profile import unknown_profile
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.limits import (
    MAX_BATCH, MAX_CHANNELS, MAX_COUNT_CHOICES, MAX_CROPS, MAX_ENSEMBLE, MAX_REPEAT, MAX_RESOLUTION, quote,
)
from scalelab.scaling.storages import check_url
from scalelab.spec.load import zoo_names, zoo_path


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
        parts = []
        if self.low is not None:
            parts.append(f"greater than {_number(self.low)}" if self.open_low else f"at least {_number(self.low)}")
        if self.high is not None:
            parts.append(f"at most {_number(self.high)}")
        return " and ".join(parts)

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


class Text:
    """A name or other free text: not empty, on one line, at most ``limit`` characters."""

    def __init__(self, what: str, limit: int = 200):
        self.what, self.limit = what, limit

    def __call__(self, value) -> str:
        text = str(value)
        if not text.strip():
            raise _refuse(f"expected {self.what}, got an empty value")
        if len(text) > self.limit:
            raise _refuse(f"{self.what} has at most {self.limit:,} characters, got {quote(text, 40)}")
        if any(unicodedata.category(c) == "Cc" for c in text):
            raise _refuse(f"{self.what} is one line of text without control characters, got {quote(text, 40)}")
        return text


#: the longest path and path component lookups accept here (Linux: PATH_MAX 4096, NAME_MAX 255 bytes)
MAX_PATH_BYTES, MAX_NAME_BYTES = 4096, 255


class Reference:
    """A file or a name looked up as one (a spec, zoo name, model, device profile): not empty, and a
    path the system can look up, so that a 5,000-character value is refused, not an OSError."""

    def __init__(self, what: str):
        self.text = Text(what, MAX_PATH_BYTES)

    def __call__(self, value) -> str:
        text = self.text(value)
        if len(os.fsencode(text)) > MAX_PATH_BYTES:
            raise _refuse(f"a path has at most {MAX_PATH_BYTES:,} bytes, got {quote(text, 40)}")
        for part in text.split("/"):
            if len(os.fsencode(part)) > MAX_NAME_BYTES:
                raise _refuse(f"a file name has at most {MAX_NAME_BYTES} bytes, got {quote(part, 40)}")
        return text


spec_ref = Reference("a spec file, zoo name or model")


class DeviceProfileReference(Reference):
    """A device profile: a profile YAML file or a shipped profile's name, looked up while the option
    is read, so that a name that is neither is refused naming the option."""

    def __call__(self, value) -> str:
        text = super().__call__(value)
        why = unknown_profile(text)
        if why is not None:
            raise _refuse(why)
        return text


def ensemble_members(value) -> str:
    """`analyze --ensemble`: a count of copies (1 to MAX_ENSEMBLE), or the other members' names."""
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d{1,30}", text) or _is_float(text):  # 2.5 is a count gone wrong, not a name
        return str(Count(1, MAX_ENSEMBLE)(text))
    names = text.split(",")
    if not text or len(names) + 1 > MAX_ENSEMBLE or any(not n.strip() for n in names):
        raise _refuse(f"expected a count such as 3, or up to {MAX_ENSEMBLE - 1} spec names such as "
                      f"resnet101,resnet152, got {quote(value, 40)}")
    for name in names:
        name = spec_ref(name.strip())
        if not Path(name).is_file() and not zoo_path(name).is_file():
            raise _refuse(f"{quote(name, 80)}: no such file or zoo spec{did_you_mean(Path(name).stem, zoo_names())}; "
                          f"`scalelab zoo` lists the zoo")
    return text


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def optimizer(value) -> str:
    """An optimizer the training-memory model knows (sgd, sgd-momentum, adam)."""
    if value not in OPTIMIZER_STATES:
        raise _refuse(f"expected one of {', '.join(OPTIMIZER_STATES)}, got {quote(value, 40)}")
    return str(value)


def _checked(check, value: str) -> str:
    """A value checked by the library's own check, whose message becomes the option's."""
    try:
        check(value)
    except ScalelabError as exc:
        raise _refuse(str(exc)) from None
    return value


def dtype(value) -> str:
    """A data type the memory and latency models know (fp32, fp16, bf16, int8)."""
    return _checked(dtype_bytes, str(value))


def storage_url(value) -> str:
    """`scale --storage`: 'memory', or a database URL that can be shared and resumed."""
    return _checked(check_url, Text("a storage URL such as sqlite:///studies.db, or memory", MAX_PATH_BYTES)(value))


#: what torchvision's ImageFolder reads (torchvision.datasets.folder.IMG_EXTENSIONS)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _has_image(folder: Path) -> bool:
    for _, _, files in os.walk(folder, followlinks=True):  # stops at the first image
        if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
            return True
    return False


def image_folder(value) -> Path:
    """`--data`: an ImageFolder layout (or train/ and val/ ones), at least 2 class folders, each with
    an image; checked before any trial runs (the trials would each fail)."""
    root = existing_folder(value)
    parts = [root / "train", root / "val"] if (root / "train").is_dir() and (root / "val").is_dir() else [root]
    for part in parts:
        try:
            classes = sorted(p for p in part.iterdir() if p.is_dir())
        except OSError as exc:
            raise _refuse(f"{quote(str(part), 80)}: cannot read: {exc.strerror}") from None
        if len(classes) < 2:
            raise _refuse(f"{quote(str(part), 80)}: an image folder has one sub-folder per class, at least 2; "
                          f"found {len(classes)}")
        empty = next((c for c in classes if not _has_image(c)), None)
        if empty is not None:
            raise _refuse(f"{quote(str(empty), 80)}: a class folder without an image "
                          f"({', '.join(IMAGE_EXTENSIONS)})")
    return root


def output_file(value) -> Path:
    """``-o FILE``: named; whether it can be written is checked by the command first thing
    (``scalelab.output.check_output_file``, one located line)."""
    return Path(Reference("a file name")(value))


def output_folder(value) -> Path:
    """``--report-dir`` / ``--output-dir``: named; whether it exists or can be made is the command's check."""
    return Path(Reference("a folder")(value))


def output_format(output: Optional[Path], given: Optional[str], by_suffix: dict[str, str], default: str) -> str:
    """The format of every command with ``--format`` and ``-o``: the one asked for, or the one the
    file's extension names; an extension that names another format is refused, not overridden."""
    if output is None:
        return given or default
    suffix = output.suffix.lower()
    implied = by_suffix.get(suffix)
    if given is None:
        if implied is None:
            raise ScalelabError(f"--output {output}: cannot tell the format from '{suffix or 'no extension'}'; name "
                                f"the file {', '.join(by_suffix)}, or give --format")
        return implied
    if implied is not None and implied != given:
        raise ScalelabError(f"--format {given} contradicts --output {output} (a {implied} file name); "
                            f"drop --format or rename the file")
    return given


def parse_resolution(text: Optional[str]) -> "tuple[int, int] | None":
    """``--resolution``: '224' -> (224, 224); '224x160' -> (224, 160) (height x width)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d{1,9})\s*(?:[xX,]\s*(\d{1,9})\s*)?", text)
    if not match:
        raise ScalelabError(f"--resolution: expected a size such as 224 or 224x160 (height x width), got {quote(text, 40)}")
    h = int(match.group(1))
    w = int(match.group(2)) if match.group(2) else h
    if not (1 <= h <= MAX_RESOLUTION and 1 <= w <= MAX_RESOLUTION):
        raise ScalelabError(f"--resolution: sizes must be between 1 and {MAX_RESOLUTION:,}, got '{text}'")
    return (h, w)


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


def existing_file(value) -> Path:
    """A file that exists (a table to read), checked before any work starts."""
    path = Path(value)
    if not path.is_file():
        raise _refuse(f"{quote(str(value), 80)}: " + ("not a file" if path.exists() else "no such file"))
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
DATA_FOLDER = image_folder
DTYPE = dtype
OUTPUT = output_file
TABLE = existing_file
FOLDER = output_folder
OPTIMIZER = optimizer
SPEC = spec_ref
PROFILE = DeviceProfileReference("a device profile name or file")
MODEL = Reference("a model, module:callable or file.py:callable")
REPORT_OR_SPEC = Reference("a search report, a spec file or a zoo name")
BUDGET = Text("a budget such as 400MFLOPs")
ENSEMBLE = ensemble_members
STORAGE = storage_url
STUDY = Text("a study name", 200)  # its report files add up to 24 characters, within a file name's 255
#: a block or stage name, a kind, a profile's name: words a spec or the command defines
NAME = Text("a name")
SOURCE = Text("where a figure comes from, such as a paper's table or a results file")
TOP1 = FiniteFloat(0, 100)  # a top-1 accuracy in percent
COLUMNS = Text("column keys such as params,macs")
METRICS = Text("metrics such as macs,params")
INPUT = Text("an input such as 3x224x224")
#: the process that started a `scale --workers` helper (Linux pids are below 2^22)
PID = Count(1, 2**22)
#: `scale --workers`: processes on this machine
WORKERS = Count(1, 256)
HEARTBEAT = Count(1, 3600)
