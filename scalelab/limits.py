"""The documented bounds on every number and file read from outside (specs, options, profiles,
reports), and the short quoting of an offending value in a message.

The bounds are far above any real network (the largest torchvision model has 2,688 channels and
a few hundred blocks) and low enough that the analysis of anything inside them finishes in seconds
with exact integer arithmetic. README.md ("Bounds") lists them.
"""

from __future__ import annotations

import reprlib
from math import prod

#: channels of a feature map, features of a linear layer, groups, classes
MAX_CHANNELS = 2**20
#: input height or width; kernel, stride, dilation, padding and pooling sizes
MAX_RESOLUTION = 2**16
#: repeats of one stage
MAX_REPEAT = 10**4
#: blocks of a network once its stages are repeated (and entries of a spec's blocks list)
MAX_BLOCKS = 10**4
#: elements of one tensor of one sample: a feature map or a layer's weights (4 TiB at fp32)
MAX_ELEMENTS = 2**40
#: batch size
MAX_BATCH = 2**16
#: test crops (views) per image, `analyze --crops` and `scale --crops`
MAX_CROPS = 10**4
#: networks of one ensemble searched by `scale --ensembles` (the course notes train 3 to 15)
MAX_ENSEMBLE = 100
#: values listed in `scale --ensembles` or `--crops`: the two-step method runs its step 2 once per
#: (models, crops) pair, so 8 x 8 pairs at most
MAX_COUNT_CHOICES = 8
#: size of a spec or device profile file
MAX_SPEC_BYTES = 2 * 2**20
#: size of a search report read by `scalelab plot`
MAX_REPORT_BYTES = 64 * 2**20
#: YAML nodes of a document once its aliases are expanded
MAX_YAML_NODES = 2**18
#: characters of an integer written in a YAML file (bounds above need at most 16 digits)
MAX_INT_CHARS = 32
#: characters of a block or stage name (the longest module path of a torchvision model has 74)
MAX_NAME_CHARS = 128
#: characters of an offending value quoted in a message
QUOTE_CHARS = 200

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, QUOTE_CHARS, QUOTE_CHARS, 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters, saying how long a cut string was; one line.

    Nested values are cut by depth and length before they are written out, so quoting a 25 MB
    alias expansion costs nothing."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value):,} characters)"
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1:,} digits"
    text = _REPR.repr(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return text.replace("\n", "\\n")


def one_line(message: str) -> str:
    """A message on one line (a YAML library's message may span several)."""
    return " ".join(message.split())


def elements(shape) -> int:
    return prod(shape) if shape else 0
