"""Running ``torch.export`` on a module for the importer, and refusing in the user's terms what it
cannot capture or what leaves nothing to import. Torch's own output while it fails (a partial graph
printed to stderr, tracebacks logged) is kept from the user: what matters of it, the line of the
module's code a data-dependent branch is on, goes into the one message."""

from __future__ import annotations

import contextlib
import io
import logging
import re
from typing import Iterator

from scalelab.errors import ScalelabError

#: the first example batch: a batch of 2 keeps export from specialising the batch to 1
EXAMPLE_BATCH = 2

#: where torch's message names the user's call a data-dependent guard came from
_CALL = re.compile(r'The following call raised this error:\s*File "([^"]+)", line (\d+), in \S+\n\s*(.+)')
#: a partial graph's note of the code a node came from (the last one is where the capture stopped)
_GRAPH_LINE = re.compile(r"# File: (\S+):(\d+) in \S+, code: (.+)")


@contextlib.contextmanager
def quiet_torch() -> Iterator[None]:
    """Torch logs a traceback for a shape it cannot compute and prints the partial graph of a failed
    export to stderr before raising; the refusal says what matters in one line, so neither shows."""
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _user_line(exc: BaseException) -> "tuple[str, str, str] | None":
    """(file, line, code) of the module's code a data-dependent branch is on, where torch says it:
    in its message, else as the last line of module code in the partial graph it kept."""
    import torch  # the importer runs torch: its own files are not the user's

    found = _CALL.search(str(exc))
    if found:
        return found.group(1), found.group(2), found.group(3).strip()
    torch_dir = torch.__file__.rpartition("/")[0] + "/"
    lines = [m for m in _GRAPH_LINE.finditer(str(getattr(exc, "partial_fx_graph", "")))
             if not m.group(1).startswith(torch_dir)]
    return (lines[-1].group(1), lines[-1].group(2), lines[-1].group(3).strip()) if lines else None


def _why(exc: BaseException) -> str:
    """Why export failed, as the user can act on it: a branch on a tensor's values by its line."""
    if type(exc).__name__ != "GuardOnDataDependentSymNode" and "data-dependent" not in first_line(exc):
        return f"{type(exc).__name__}: {first_line(exc)}"
    where = _user_line(exc)
    at = f" at {where[0]}:{where[1]} (`{where[2]}`)" if where else ""
    return (f"its code branches on the values of a tensor{at}; a capture follows one path for every input, "
            f"so a branch may depend on shapes only")


def export_program(model, input_shape: tuple[int, ...], ref: str):
    """``torch.export`` of ``model`` at a dynamic batch of ``input_shape`` inputs (non-strict), or one
    ScalelabError saying why not: the module cannot run at all, or export cannot capture it."""
    import torch
    from torch.export import Dim, export

    size = "x".join(map(str, input_shape))
    try:
        with quiet_torch():
            return export(model, (torch.zeros(EXAMPLE_BATCH, *input_shape),),
                          dynamic_shapes=({0: Dim("batch", min=2)},), strict=False)
    except Exception as exc:  # data-dependent control flow, a batch fixed by the code, or no run at all
        failure = exc
    try:
        with torch.no_grad(), quiet_torch():
            model(torch.zeros(EXAMPLE_BATCH, *input_shape))  # a plain run says clearly what fails
    except Exception as exc:
        raise ScalelabError(f"{ref}: the module cannot run on a {size} input: {type(exc).__name__}: "
                            f"{first_line(exc)}") from None
    raise ScalelabError(f"{ref}: torch.export cannot capture this module at {size}: {_why(failure)}") from None


def refuse_nothing(program, ref: str) -> None:
    """Refuse, in the module's terms, a forward whose outputs give nothing to import: None or other
    values that are not tensors, its input itself, or tensors computed without reading the input."""
    from torch.export.graph_signature import OutputKind

    output = next(n for n in program.graph.nodes if n.op == "output")
    values = [v for v, spec in zip(output.args[0], program.graph_signature.output_specs)
              if spec.kind == OutputKind.USER_OUTPUT]
    tensors = [v for v in values if hasattr(v, "op")]
    if not tensors:
        shown = repr(values[0]) if len(values) == 1 else f"({', '.join(map(repr, values))})"
        raise ScalelabError(f"{ref}: its forward returns {shown}, not a tensor: there is nothing to import")
    given = {n for n in program.graph.nodes if n.op == "placeholder" and n.name in program.graph_signature.user_inputs}
    if all(t in given for t in tensors):
        raise ScalelabError(f"{ref}: its forward returns its input unchanged: there is nothing to import")
    if not any(_reads(t, given) for t in tensors):
        raise ScalelabError(f"{ref}: its forward's output is computed without reading its input (a parameter "
                            f"or a constant): there is nothing to import")


def _reads(node, given: set) -> bool:
    """Whether ``node`` is computed from one of the ``given`` nodes."""
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n in given:
            return True
        if n not in seen:
            seen.add(n)
            todo.extend(n.all_input_nodes)
    return False
