"""Capturing a module with ``torch.export``: one eval-mode forward pass at the given input shape, as
ATen operators (the default IR), with a dynamic batch so that the batch axis of every tensor can be
told apart from the others (it is the only axis whose size is the batch symbol).

Operators the table has no entry for are decomposed (``run_decompositions`` with the default table
less every operator the table knows), so that every node ends at an entry or is refused by name.
Higher-order wrapper nodes (``wrap_with_set_grad_enabled``, ``wrap_with_autocast``: a region run
under ``torch.no_grad()``, ``inference_mode`` or autocast) are inlined before decomposing, while their
nodes still carry the modules they ran in. Warnings torch raises while a module is built and captured
are kept from stderr (``torch_warnings``)."""

from __future__ import annotations

import contextlib
import math
import operator
import re
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from scalelab.errors import ScalelabError
from scalelab.importer.exporting import EXAMPLE_BATCH, export_program, refuse_nothing

if TYPE_CHECKING:  # pragma: no cover
    from torch import fx, nn


class BatchMerged(Exception):
    """A tensor whose batch axis is merged into another axis in a way no per-sample reading keeps."""


#: operators that only give their input a new shape (a merge of the batch into an axis starts here)
VIEWS = ("view", "reshape", "_unsafe_view", "unsqueeze", "squeeze", "flatten", "unflatten")
#: operators that only reorder their input's axes (a merged axis moves whole)
MOVES = ("permute", "transpose", "t")


@dataclass(frozen=True)
class Place:
    """Where a tensor holds the batch: on ``axis``, alone (``merged`` 1) or merged with ``merged``
    per-sample entries, ``before`` of them outside the batch (the axis's index is
    ``(outer * batch + b) * inner + i`` with ``outer < before``; nn.MultiheadAttention's (L, B*h, d)
    has before 1, its (L*B, E) before L). Per sample, a merged axis is an axis of ``merged`` entries."""

    axis: int
    merged: int = 1
    before: int = 1


@dataclass
class Captured:
    """An exported graph with what the importer reads from it: which placeholder is which parameter or
    buffer (by its state-dict name), and the module it came from."""

    graph: fx.Graph
    root: nn.Module
    input_shape: tuple[int, ...]  # per sample
    state: dict[Any, str]  # placeholder node -> the source's parameter or buffer name
    trainable: set[str]  # the names of parameters (the rest of ``state`` are buffers and constants)
    batch: Any = None  # the batch size's symbol
    live: set = field(default_factory=set)  # nodes the output depends on (and in-place writes)
    places: dict = field(default_factory=dict)  # node -> Place, None, or why its batch cannot be placed
    layouts: dict = field(default_factory=dict)  # node -> its tensor as the spec's module lays it out
    values: dict = field(default_factory=dict)  # state name -> the source's tensor (constants included)
    later: "set[int] | None" = None  # the storages a second plain eval pass reads (read_once)

    def nodes(self):
        return self.graph.nodes

    def read_once(self, name: str) -> bool:
        """Whether the module reads the parameter or buffer ``name`` on its first eval pass only: a
        module that keeps what it computes from it (timm's ``attention_bias_cache``) reads the kept
        tensor on every later pass, so its second pass (as a capture made after one pass) never
        reads ``name``."""
        if self.later is None:
            self.later = _read_on_a_second_pass(self.root, self.input_shape)
        tensors = {**dict(self.root.named_parameters()), **dict(self.root.named_buffers())}
        return name in tensors and tensors[name].untyped_storage().data_ptr() not in self.later

    def batch_axis(self, node) -> "int | None":
        """The axis of the node's tensor that is the batch, or None (a tensor of parameters, a constant).
        Raises BatchMerged if the batch is merged into an axis."""
        place = self.place(node)
        if place is not None and place.merged > 1:
            raise BatchMerged(f"axis {place.axis} of size {place.merged} x batch merges the batch into another axis")
        return place.axis if place is not None else None

    def place(self, node) -> "Place | None":
        """Where the node's tensor holds the batch (None: nowhere). Raises BatchMerged where the batch
        is merged into an axis in a way that cannot be told apart per sample."""
        if node not in self.places:
            for n in self.graph.nodes:  # in graph order: a place derives from the inputs' places
                if n not in self.places:
                    self.places[n] = _place(self, n)
        place = self.places.get(node)
        if isinstance(place, str):
            raise BatchMerged(place)
        return place

    def outer(self, node) -> int:
        """How many per-sample elements precede the batch in the tensor's row-major order (a reshape
        is per sample exactly when it keeps this number)."""
        place = self.place(node)
        shape = _val_shape(node)
        if place is None or shape is None:
            raise BatchMerged("no axis holds the batch")
        return math.prod(int(d) for d in shape[:place.axis]) * place.before

    def in_batches(self, expr) -> str:
        """A size the batch is merged into, as the user reads it: ``12 x batch``, not the capture's symbol."""
        per_sample = expr / self.batch
        if getattr(per_sample, "is_Integer", False):
            return f"{per_sample} x batch"
        return str(expr.subs(self.batch, type(self.batch)("batch")))  # a sympy Symbol named for the user

    def shape_of(self, node) -> "tuple[int, ...] | None":
        """The node's shape per sample (batch axis removed), or None if it is not one tensor."""
        shape = _val_shape(node)
        if shape is None:
            return None
        try:
            axis = self.batch_axis(node)
        except BatchMerged:  # per sample, an axis of size batch * k holds k
            axis = None
        return tuple(int(d) if isinstance(d, int) else int(d.node.expr.subs(self.batch, 1))
                     for i, d in enumerate(shape) if i != axis)

    def torch_shape(self, node) -> "tuple | None":
        """The node's shape as torch holds it, batch included (sizes of the batch as symbols)."""
        return _val_shape(node)

    def full_shape(self, node) -> "tuple[int, ...] | None":
        """The node's shape with the batch axis kept as -1."""
        shape = _val_shape(node)
        if shape is None:
            return None
        axis = self.batch_axis(node)
        return tuple(-1 if i == axis else int(d) for i, d in enumerate(shape))


def _place(cap: Captured, node) -> "Place | str | None":
    """A node's Place from its shape and, for an axis the batch is merged into, its inputs' places;
    a string says why none can be given."""
    shape = _val_shape(node)
    if shape is None:
        return None
    found: list[Place] = []
    for i, d in enumerate(shape):
        expr = getattr(getattr(d, "node", None), "expr", None)
        if expr is None or cap.batch not in getattr(expr, "free_symbols", ()):
            continue
        per_sample = expr / cap.batch
        if not getattr(per_sample, "is_Integer", False):
            return f"axis {i} of size {cap.in_batches(expr)} merges the batch into another axis"
        found.append(Place(i, int(per_sample)))
    if len(found) != 1:
        return None if not found else "two axes hold the batch"
    place = found[0]
    return place if place.merged == 1 else _merged(cap, node, place, shape)


def _merged(cap: Captured, node, place: Place, shape) -> "Place | str":
    """The factor of a merged axis before the batch: set where a reshape merges it (from the input's
    outer elements), kept where a permute moves it or an operation reads it in line."""
    why = f"axis {place.axis} of size {place.merged} x batch merges the batch into another axis"
    packet = getattr(getattr(node, "target", None), "_overloadpacket", None)
    name = packet.__name__ if packet is not None else ""
    inputs = node.all_input_nodes
    if node.target is operator.getitem and inputs and inputs[0].args:  # a part of unbind or split: as its input
        inputs = [inputs[0].args[0]]
    sources = [a for a in inputs if isinstance(cap.places.get(a), Place)]
    if name in VIEWS and node.args[0] in sources:
        prefix = math.prod(int(d) for d in shape[:place.axis])
        outer = cap.outer(node.args[0])
        if outer % prefix or place.merged % (outer // prefix):
            return f"a reshape that splits the batch: {why}"
        return Place(place.axis, place.merged, outer // prefix)
    rank = len(shape)
    for source in sources:
        theirs = cap.places[source]
        aligned = name in MOVES or rank - place.axis == len(_val_shape(source) or ()) - theirs.axis
        if theirs.merged == place.merged and aligned:
            return Place(place.axis, place.merged, theirs.before)
    return why


def _val_shape(node) -> "tuple | None":
    val = getattr(node, "meta", {}).get("val")
    return tuple(val.shape) if val is not None and hasattr(val, "shape") and hasattr(val, "dtype") else None


def scope_of(node) -> str:
    """The qualified name of the innermost module the node ran in ('' at the top level)."""
    stack = node.meta.get("nn_module_stack") or {}
    return str(next(reversed(stack.values()))[0]) if stack else ""


#: torch's notice that a module assigned itself a tensor during export (a cache): export restores the
#: attribute, and what the module runs once the cache is filled is read by a second capture (read_once)
_ASSIGNED = re.compile(r"tensor attributes? .* (was|were) assigned during export", re.S)
#: notices about an API's future (deprecations, changing defaults), never about the module's cost
_NOTICES = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


@contextlib.contextmanager
def torch_warnings(ref: str) -> Iterator[list[str]]:
    """Record the warnings raised inside, so that none reaches stderr as Python prints it. Dropped, as
    they say nothing about the module's cost: notices about an API's future and export's notice of a
    tensor a module assigns itself. Any other becomes one line of the list given (an import's notes),
    once however often it was raised. A refusal raised inside carries them as its ``__notes__`` (those
    of an outer block first), as a warning may say why the module was refused."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield notes
        except ScalelabError as exc:
            notes += _notes(caught, ref)
            inner = getattr(exc, "__notes__", [])
            exc.__notes__ = notes + [n for n in inner if n not in notes]
            raise
    notes += _notes(caught, ref)


def _notes(caught: list, ref: str) -> list[str]:
    notes: list[str] = []
    for w in caught:
        message = str(w.message).strip()
        if issubclass(w.category, _NOTICES) or _ASSIGNED.search(message):
            continue
        note = f"{ref}: warned while it was built and captured: {message.splitlines()[0] if message else w.category.__name__}"
        if note not in notes:
            notes.append(note)
    return notes


def _decompose(program, known: Callable[[Any], bool]):
    """Decompose only the operators the table has no entry for (to the core ATen set)."""
    from torch.export import default_decompositions

    unknown = {n.target for n in program.graph.nodes if n.op == "call_function" and not known(n.target)}
    if not unknown:
        return program
    table = default_decompositions()
    for op in list(table.keys()):
        if known(op):
            del table[op]
    return program.run_decompositions(table)


def _inline_wrappers(graph_module) -> None:
    """Replace each higher-order wrapper node (a submodule run under a grad mode or autocast) by the
    nodes of its submodule, so that the table sees the operators inside. Done before decomposing:
    the submodule's nodes name the modules they ran in, which decomposing would replace by the
    wrapper's (the module around the region), losing the block names."""
    from torch import fx  # the importer runs torch

    wrappers = [n for n in graph_module.graph.nodes if n.op == "call_function"
                and getattr(n.target, "__name__", None) in ("wrap_with_set_grad_enabled", "wrap_with_autocast")]
    if not wrappers:
        return
    for node in wrappers:
        _inline(graph_module, node)
    for node in list(graph_module.graph.nodes):  # the submodules' references, read by nothing now
        if node.op == "get_attr" and not node.users and isinstance(getattr(graph_module, node.target, None), fx.GraphModule):
            graph_module.graph.erase_node(node)
    graph_module.recompile()
    _inline_wrappers(graph_module)  # wrappers nested in wrappers


def _inline(graph_module, node) -> None:
    """Put the nodes of one wrapper's submodule in its place; a submodule of that submodule (a nested
    region) becomes the graph module's own, under a name of its own."""
    skip = 1 if node.target.__name__ == "wrap_with_set_grad_enabled" else 4
    sub = getattr(graph_module, node.args[skip].target)
    env = dict(zip([p for p in sub.graph.nodes if p.op == "placeholder"], node.args[skip + 1:]))
    outputs: list = []
    with graph_module.graph.inserting_before(node):
        for inner in sub.graph.nodes:
            if inner.op == "placeholder":
                continue
            if inner.op == "output":
                outputs = [env[o] if hasattr(o, "op") else o for o in inner.args[0]]
                continue
            env[inner] = graph_module.graph.node_copy(inner, lambda n: env[n])
            if inner.op == "get_attr":
                name = f"{node.args[skip].target}_{inner.target}"
                graph_module.add_submodule(name, getattr(sub, inner.target))
                env[inner].target = name
    for user in list(node.users):
        if user.target is operator.getitem:
            user.replace_all_uses_with(outputs[user.args[1]])
            graph_module.graph.erase_node(user)
    graph_module.graph.erase_node(node)


def _live(graph) -> set:
    """Nodes the output depends on, and in-place operators with their inputs (they write a tensor
    something reads)."""
    live, todo = set(), [n for n in graph.nodes if n.op == "output"]
    while todo:
        n = todo.pop()
        if n in live:
            continue
        live.add(n)
        todo.extend(n.all_input_nodes)
    return live


def capture(model, input_shape: tuple[int, ...], ref: str, known: Callable[[Any], bool]) -> Captured:
    """Export ``model`` in eval mode at a dynamic batch of ``input_shape`` inputs; decompose the
    operators ``known`` rejects."""
    model.eval()
    program = export_program(model, input_shape, ref)
    refuse_nothing(program, ref)
    _inline_wrappers(program.graph_module)
    program = _decompose(program, known)
    graph_module = program.graph_module
    signature = program.graph_signature
    names = {**signature.inputs_to_parameters, **signature.inputs_to_buffers,
             **signature.inputs_to_lifted_tensor_constants}
    state = {n: names[n.name] for n in graph_module.graph.nodes if n.op == "placeholder" and n.name in names}
    user = [n for n in graph_module.graph.nodes if n.op == "placeholder" and n.name in signature.user_inputs]
    batch = _val_shape(user[0])[0].node.expr  # type: ignore[index]  # the input is a tensor
    return Captured(graph_module.graph, model, tuple(input_shape), state,
                    set(signature.inputs_to_parameters.values()), batch, _live(graph_module.graph),
                    values={**program.state_dict, **program.constants})


def _read_on_a_second_pass(model, input_shape: tuple[int, ...]) -> set[int]:
    """The storages of every tensor the ATen operators of ``model``'s second plain eval pass read:
    where the module kept a tensor from its first pass, the second reads the kept tensor instead of
    the parameters it was computed from."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class Reads(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.storages: set[int] = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.storages.update(t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs or {}))
                                 if isinstance(t, torch.Tensor))
            return func(*args, **(kwargs or {}))

    x = torch.zeros(EXAMPLE_BATCH, *input_shape)
    with torch.no_grad():
        model(x)
        with Reads() as reads:
            model(x)
    return reads.storages
