"""Modules that never run in eval mode (GoogLeNet's and Inception v3's auxiliary classifiers):
found by the parameters the eval-mode trace never reads, placed by a training-mode trace (which
node feeds them), and imported as training-only blocks. Training-only blocks are left out of the
inference totals and reported apart, as the zoo's GoogLeNet does."""

from __future__ import annotations

from scalelab.importer.emit import block_names, spec_blocks
from scalelab.importer.mapping import map_graph
from scalelab.importer.trace import Traced, shape_of, trace


def never_run(traced: Traced) -> dict[str, int]:
    """Modules whose parameters the eval-mode trace never reads, outermost first -> their parameters."""
    used: set[str] = set()
    for node in traced.nodes():
        if node.op == "call_module":
            used.update(f"{node.target}.{n}" for n, _ in traced.submodule(node.target).named_parameters())
        elif node.op == "get_attr":
            used.add(str(node.target))
    dead: dict[str, int] = {}
    for name, p in traced.root.named_parameters():
        if name in used:
            continue
        owner = name.rpartition(".")[0]
        while "." in owner and not any(u.startswith(owner.rpartition(".")[0] + ".") for u in used):
            owner = owner.rpartition(".")[0]
        dead[owner] = dead.get(owner, 0) + p.numel()
    return dead


def _feeding_nodes(model, heads: set[str]) -> dict:
    """Head -> the node feeding it in a training-mode trace where each head is one leaf call."""
    from torch import fx

    class HeadsAsLeaves(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return qualname in heads or super().is_leaf_module(m, qualname)

    try:
        model.train()
        graph = HeadsAsLeaves().trace(model)
    except Exception:  # the training path does not trace: the heads stay reported, not imported
        return {}
    finally:
        model.eval()
    return {n.target: n.args[0] for n in graph.nodes
            if n.op == "call_module" and n.target in heads and n.args and hasattr(n.args[0], "op")}


def head_blocks(traced: Traced, produced: dict, heads: dict[str, int], ref: str) -> tuple[list, dict, dict]:
    """Training-only blocks for each head that can be placed and expressed exactly; the heads left
    over (reported in the description only) with their parameters."""
    feeding = _feeding_nodes(traced.root, set(heads))
    eval_nodes = {n.name: n for n in traced.nodes()}
    blocks, shapes, left = [], {}, dict(heads)
    for head, train_node in feeding.items():
        node = eval_nodes.get(train_node.name)  # both traces name nodes alike up to the first head
        if node is None or node.op != train_node.op or node.target != train_node.target or node not in produced:
            continue
        sub = trace(traced.root.get_submodule(head), shape_of(node), f"{ref}: {head}")  # type: ignore[arg-type]  # produced: a tensor
        mapped = map_graph(sub)
        if mapped.problems:
            continue
        names = [f"{head}.{n}" for n in block_names(mapped.drafts, sub)]
        more, more_shapes = spec_blocks(mapped.drafts, names, entry=produced[node], training_only=True)
        blocks += more
        shapes.update(more_shapes)
        del left[head]
    return blocks, shapes, left
