"""Memory model vs what torch holds, over the zoo.

On CPU: training memory of one real step (forward, backward, optimizer step) — weights, gradients,
optimizer state and the tensors autograd saves for backward (distinct storages, captured with
``torch.autograd.graph.saved_tensors_hooks``) — against ``scalelab.analysis.memory.training_memory``.
On CUDA (``--device cuda``) also the inference peak: ``torch.cuda.max_memory_allocated`` during a
forward pass, minus the weights, against ``inference_memory`` (which counts block boundaries only,
so it is a lower bound of what the allocator sees).

    .venv/bin/python benchmarks/bench_memory.py            # writes benchmarks/memory.md
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

NETWORKS = ["resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "googlenet", "vgg16"]


def torch_training(network, optimizer: str, batch: int, device: str) -> dict:
    import torch

    from scalelab.build import Net

    torch.manual_seed(0)
    model = Net(network).train().to(device)
    state = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in state:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    params = list(model.parameters())
    opt = {"sgd": lambda: torch.optim.SGD(params, lr=0.1),
           "sgd-momentum": lambda: torch.optim.SGD(params, lr=0.1, momentum=0.9),
           "adam": lambda: torch.optim.Adam(params)}[optimizer]()
    x = torch.randn(batch, *network.input_shape, device=device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
        loss = sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()
    loss.backward()
    opt.step()
    return {
        "weights": sum(p.nbytes for p in params),
        "gradients": sum(p.grad.nbytes for p in params if p.grad is not None),
        "optimizer": sum(t.nbytes for s in opt.state.values() for k, t in s.items() if torch.is_tensor(t) and k != "step"),
        "saved": sum(saved.values()),
    }


def cuda_inference_peak(network, batch: int, device: str) -> int:
    import torch

    from scalelab.build import Net

    model = Net(network).eval().to(device)
    x = torch.randn(batch, *network.input_shape, device=device)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    with torch.inference_mode():
        model(x)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base + x.nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("memory.md"))
    args = parser.parse_args()

    import torch

    from scalelab.analysis.memory import inference_memory, training_memory
    from scalelab.graph import resolve
    from scalelab.report import human_bytes
    from scalelab.spec import load_spec

    started = time.time()
    lines = [
        "# Memory model vs torch",
        "",
        f"Written by `benchmarks/bench_memory.py`: one training step (batch {args.batch}, fp32, {args.optimizer}) of "
        f"each zoo network built with `scalelab.build` on {args.device}, torch {torch.__version__}. "
        "Saved activations: distinct storages torch's autograd keeps for backward (parameters and buffers excluded). "
        "Optimizer state excludes Adam's one-element step counters. Ratio = scalelab / torch.",
        "",
        "| network | weights | gradients | optimizer state | saved activations (scalelab) | saved (torch) | ratio |"
        + (" inference peak (scalelab) | allocator peak (torch) | ratio |" if args.device.startswith("cuda") else ""),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if args.device.startswith("cuda") else ""),
    ]
    for name in NETWORKS:
        network = resolve(load_spec(name))
        model = training_memory(network, "fp32", args.batch, args.optimizer)
        real = torch_training(network, args.optimizer, args.batch, args.device)
        for key, ours in (("weights", model.weight_bytes), ("gradients", model.gradient_bytes),
                          ("optimizer", model.optimizer_bytes)):
            assert ours == real[key], (name, key, ours, real[key])
        row = (f"| {name} | {human_bytes(model.weight_bytes)} (exact) | {human_bytes(model.gradient_bytes)} (exact) | "
               f"{human_bytes(model.optimizer_bytes)} (exact) | {model.saved_bytes:,} | {real['saved']:,} | "
               f"{model.saved_bytes / real['saved']:.4f} |")
        if args.device.startswith("cuda"):
            peak = inference_memory(network, "fp32", args.batch).peak_bytes
            allocator = cuda_inference_peak(network, args.batch, args.device)
            row += f" {peak:,} | {allocator:,} | {peak / allocator:.3f} |"
        lines.append(row)
        print(row, flush=True)
    lines += ["", f"Run time {time.time() - started:.0f} s; load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}.", ""]
    if not args.device.startswith("cuda"):
        lines += ["No GPU on this machine: the inference-peak comparison (`torch.cuda.max_memory_allocated`) runs "
                  "with `--device cuda` where one is present.", ""]
    args.output.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
