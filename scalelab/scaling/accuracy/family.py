"""Which family of published scaling series a spec's accuracy is estimated from.

A network's family is read from its block kinds, not its name, so a scaled, renamed or imported
spec keeps it:

- ``transformer``: it has attention blocks and no convolution except a patch embedding (a
  ``patch_embed`` kind, Swin's ``patch_merging``, or a plain conv whose kernel equals its stride, as
  an imported patch embedding is written): ViT, DeiT, Swin;
- ``hybrid``: attention blocks and convolutions (MobileViT, MaxViT, CoAtNet);
- ``cnn``: no attention block.

Each family's law is fitted on its own series only (``published.yaml``'s ``family``): the CNN law
says nothing about transformers, and no series of hybrids is published in the table.
"""

from __future__ import annotations

from scalelab.blocks import Block
from scalelab.scaling.transformer import blocks_in
from scalelab.spec import Spec

#: block kinds that attend (the transformer kinds and the bare scaled dot-product attention)
ATTENTION_KINDS = frozenset({"transformer", "self_attention", "swin_block", "attention", "maxvit_block"})
#: block kinds that convolve over a spatial map (a patchifying conv is told apart by ``_patchify``)
CONV_KINDS = frozenset({"conv", "conv1d", "separable", "bottleneck", "mbconv", "fused_mbconv", "inception",
                        "shuffle_unit", "maxvit_block"})  # MaxViT's block: an MBConv before its attention


def _patchify(block: Block) -> bool:
    """A conv that cuts its input into non-overlapping patches (kernel = stride): a patch embedding."""
    return block.kind == "conv" and tuple(getattr(block, "kernel", ())) == tuple(getattr(block, "stride", ()))


def network_family(spec: Spec) -> str:
    """'cnn', 'transformer' or 'hybrid' (see the module docstring)."""
    blocks = list(blocks_in(spec.blocks))
    if not any(b.kind in ATTENTION_KINDS for b in blocks):
        return "cnn"
    return "hybrid" if any(b.kind in CONV_KINDS and not _patchify(b) for b in blocks) else "transformer"
