"""Which source state-dict entry each parameter and buffer of the module built from the spec holds,
so that the source's weights load into the rebuilt module (``Imported.state_keys``)."""

from __future__ import annotations

from scalelab.errors import ScalelabError

TRACKED = "num_batches_tracked"  # batch norm's counter: read by no operator, kept beside its statistics


def state_keys(spec, held: list[tuple[list[str], list[str]]], model, ref: str) -> "tuple[str | None, ...]":
    """The source key of every entry of ``build_module(spec).state_dict()``, in its order (None where
    the source's state dict has no such entry: batch norm's counter where it keeps none, a buffer it
    keeps out of its state dict, as a position index the spec's module rebuilds). ``held`` gives each
    draft's block names and the source state it reads, in order. Built on the meta device: no memory
    for the weights."""
    import torch

    from scalelab.build import build_module  # torch: the spec's module is built

    with torch.device("meta"):
        net = build_module(spec)
    source = model.state_dict()
    tensors = {**dict(model.named_buffers(remove_duplicate=False)), **source}  # non-persistent buffers too
    owner = {name: i for i, name in enumerate(net.names)}
    keys: list = []
    for names, state in held:
        built = [(f"blocks.{owner[n]}.{k}", t) for n in names for k, t in net.blocks[owner[n]].state_dict().items()]
        pending = list(state)
        for key, tensor in built:
            if key.endswith(TRACKED):
                stats = [k for k in keys if k and k.endswith("running_var")]
                keys.append(stats[-1].removesuffix("running_var") + TRACKED if stats else None)
                continue
            if pending and pending[0] not in tensors:
                raise ScalelabError(f"{ref}: the spec's module holds {key} {tuple(tensor.shape)} where the source "
                                    f"has no tensor {pending[0]} (as a parameter or a buffer); the import is not "
                                    f"exact, please report this module")
            if not pending or tensors[pending[0]].numel() != tensor.numel():  # a param block may hold a view
                raise ScalelabError(f"{ref}: the spec's module holds {key} {tuple(tensor.shape)} where the source "
                                    f"holds {pending[:1] or 'nothing'}; the import is not exact, please report this module")
            keys.append(pending.pop(0))
        if pending:
            raise ScalelabError(f"{ref}: {', '.join(pending)} of the source have no place in blocks {', '.join(names)}; "
                                f"the import is not exact, please report this module")
    return tuple(k if k in source else None for k in keys)
