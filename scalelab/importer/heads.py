"""Modules that never run in eval mode (GoogLeNet's and Inception v3's auxiliary classifiers): found
by the parameters the eval-mode capture never reads, placed by one training-mode run (which module's
output feeds them, seen by forward hooks), captured on their own and imported as training-only
blocks. Training-only blocks are left out of the inference totals and reported apart, as the zoo's
GoogLeNet does."""

from __future__ import annotations

from scalelab.importer.capture import Captured, scope_of


def never_run(cap: Captured) -> dict[str, int]:
    """Modules whose parameters the eval-mode capture never reads, outermost first -> their parameters."""
    used = {name for node, name in cap.state.items() if node in cap.live}
    dead: dict[str, int] = {}
    for name, p in cap.root.named_parameters():
        if name in used:
            continue
        owner = name.rpartition(".")[0]
        while "." in owner and not any(u.startswith(owner.rpartition(".")[0] + ".") for u in used):
            owner = owner.rpartition(".")[0]
        dead[owner] = dead.get(owner, 0) + p.numel()
    return dead


def _feeding_modules(cap: Captured, heads: set[str]) -> dict[str, str]:
    """Head -> the module whose output the head reads, in one training-mode run at batch 2."""
    import torch

    model, kept = cap.root, []
    made: dict[int, str] = {}
    fed: dict[str, "int | None"] = {}
    modules = dict(model.named_modules())

    def produced(name):
        def hook(module, args, output):
            made.setdefault(id(output), name)  # the innermost module that returned this tensor
            kept.append(output)  # alive to the end, so that no other tensor takes its id
        return hook

    def feeds(name):
        def hook(module, args):
            fed[name] = id(args[0]) if args else None
        return hook

    handles = [m.register_forward_hook(produced(n)) for n, m in modules.items() if n and n not in heads]
    handles += [modules[h].register_forward_pre_hook(feeds(h)) for h in heads if h in modules]
    buffers = {n: b.clone() for n, b in model.named_buffers()}  # the run moves batch norm's statistics
    try:
        model.train()
        with torch.no_grad():
            model(torch.zeros(2, *cap.input_shape))
    except Exception:  # the training path does not run: the heads stay reported, not imported
        return {}
    finally:
        model.eval()
        for h in handles:
            h.remove()
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(buffers[n])
    return {h: made[i] for h, i in fed.items() if i in made}


def _output_node(cap: Captured, module: str):
    """The node a module's call returns: the last node in its scope read from outside it."""
    inside = lambda n: scope_of(n) == module or scope_of(n).startswith(module + ".")  # noqa: E731
    out = None
    for node in cap.nodes():
        if node in cap.live and inside(node) and any(not inside(u) for u in node.users):
            out = node
    return out


def head_inputs(cap: Captured, heads: dict[str, int]) -> dict[str, object]:
    """Head -> the eval-mode node feeding it, for each head that a training-mode run places."""
    found = {}
    for head, module in _feeding_modules(cap, set(heads)).items():
        node = _output_node(cap, module)
        if node is not None:
            found[head] = node
    return found
