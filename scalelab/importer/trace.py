"""Tracing a module with torch.fx and giving every node its output shape (shape propagation on
fake tensors: no real computation, no memory for activations)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.errors import ScalelabError

if TYPE_CHECKING:  # pragma: no cover
    from torch import fx, nn


@dataclass
class Traced:
    """An fx graph module whose tensor-valued nodes carry ``meta['tensor_meta']``."""

    module: fx.GraphModule
    root: nn.Module  # the original module
    input_shape: tuple[int, ...]  # per sample: (channels, height, width)

    def nodes(self):
        return self.module.graph.nodes

    def submodule(self, target: str) -> nn.Module:
        return self.module.get_submodule(target)


def shape_of(node) -> "tuple[int, ...] | None":
    """The node's output shape per sample (batch dimension dropped), or None if not one tensor."""
    meta = getattr(node, "meta", {}).get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        return None
    return tuple(int(d) for d in meta.shape[1:])


def scope_of(node) -> str:
    """The qualified name of the innermost module the node was traced in ('' at the top level)."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else ""


def _located_shape_prop(graph_module, fake_mode):
    from torch.fx.passes.shape_prop import ShapeProp

    class Where(ShapeProp):
        """Shape propagation that remembers the node it is at, to say where a shape fails."""

        current = None

        def run_node(self, n):
            self.current = n
            return super().run_node(n)

    return Where(graph_module, fake_mode=fake_mode)


def trace(model, input_shape: tuple[int, ...], ref: str) -> Traced:
    """Symbolically trace ``model`` in eval mode and propagate a batch-1 input of ``input_shape``."""
    import torch
    from torch.fx import symbolic_trace
    from torch._subclasses.fake_tensor import FakeTensorMode

    model.eval()
    try:
        graph_module = symbolic_trace(model)
    except Exception as exc:  # data-dependent control flow and the like
        raise ScalelabError(f"{ref}: torch.fx cannot trace this module: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    graph_module.graph.eliminate_dead_code()
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    where = _located_shape_prop(graph_module, mode)
    try:  # ShapeProp prints a traceback before raising; the message below says it in one line
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            where.propagate(mode.from_tensor(torch.empty(1, *input_shape)))
    except Exception as exc:
        size = "x".join(map(str, input_shape))
        cause = exc.__cause__ or exc
        first = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        raise ScalelabError(f"{ref}: the module cannot run on a {size} input: at {scope_of(where.current) or 'the top'}: "
                            f"{first}") from None
    return Traced(graph_module, model, tuple(input_shape))
