"""The ``train`` accuracy method: a real short training of a candidate on an image folder.

The folder follows torchvision's ImageFolder layout (one sub-folder per class); with ``train/`` and
``val/`` sub-folders those are used, otherwise a fixed share of each class is held out for
validation. The spec's last linear layer is resized to the folder's classes; images are resized to
the candidate's input resolution. After every epoch the validation top-1 is reported to the Optuna
trial (when there is one) and the trial is pruned when the pruner says so.

The accuracy is of that dataset after a few epochs: it ranks candidates for this data, it is not an
ImageNet top-1, and every output says so.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab.errors import ScalelabError
from scalelab.spec import Spec
from scalelab.spec.model import Stage


@dataclass(frozen=True)
class TrainResult:
    top1: float  # validation top-1 after the last epoch, percent
    epochs: int
    history: list[float] = field(default_factory=list)  # validation top-1 after each epoch
    classes: int = 0
    train_images: int = 0
    val_images: int = 0
    data: str = ""

    @property
    def detail(self) -> str:
        return (f"measured: top-1 on the validation split of {self.data} ({self.val_images} images, "
                f"{self.classes} classes) after {self.epochs} epoch(s) of training on {self.train_images} images "
                f"(not an ImageNet accuracy)")


def with_classes(spec: Spec, classes: int) -> Spec:
    """The spec with its last top-level linear block producing ``classes`` outputs."""
    index = next((i for i, entry in reversed(list(enumerate(spec.blocks)))
                  if not isinstance(entry, Stage) and entry.kind == "linear"), None)
    if index is None:
        raise ScalelabError(f"spec '{spec.name}': training needs a final linear classifier block to resize to "
                            f"the dataset's {classes} classes")
    blocks = list(spec.blocks)
    blocks[index] = blocks[index].model_copy(update={"out": classes})
    return spec.model_copy(update={"blocks": blocks})


@functools.lru_cache(maxsize=4)
def load_images(data: str, size: tuple[int, int], channels: int, val_fraction: float):
    """(train x, train y, val x, val y, class names), as tensors held in memory."""
    import torch
    from torchvision import datasets, transforms

    root = Path(data)
    if not root.is_dir():
        raise ScalelabError(f"training data '{data}': no such folder (expected one sub-folder per class, "
                            "torchvision ImageFolder layout)")
    tf = transforms.Compose([
        transforms.Grayscale(1) if channels == 1 else transforms.Lambda(lambda im: im.convert("RGB")),
        transforms.Resize(size),
        transforms.ToTensor(),
    ])

    def folder(path: Path):
        try:
            ds = datasets.ImageFolder(str(path), transform=tf)
        except (FileNotFoundError, RuntimeError) as exc:
            raise ScalelabError(f"training data '{path}': {exc}") from None
        if len(ds.classes) < 2:
            raise ScalelabError(f"training data '{path}': needs at least 2 class folders, found {len(ds.classes)}")
        xs = torch.stack([ds[i][0] for i in range(len(ds))])
        ys = torch.tensor(ds.targets)
        return xs, ys, ds.classes

    if (root / "train").is_dir() and (root / "val").is_dir():
        tx, ty, classes = folder(root / "train")
        vx, vy, val_classes = folder(root / "val")
        if val_classes != classes:
            raise ScalelabError(f"training data '{data}': train/ and val/ have different class folders")
        return tx, ty, vx, vy, classes
    xs, ys, classes = folder(root)
    gen = torch.Generator().manual_seed(0)
    val_mask = torch.zeros(len(ys), dtype=torch.bool)
    for c in range(len(classes)):  # the same share of every class, fixed by the seed
        idx = (ys == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        val_mask[idx[: max(1, int(round(len(idx) * val_fraction)))]] = True
    return xs[~val_mask], ys[~val_mask], xs[val_mask], ys[val_mask], classes


def train_accuracy(
    spec: Spec,
    data: "str | Path | None" = None,
    *,
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 0.01,
    seed: int = 0,
    val_fraction: float = 0.2,
    trial: Any = None,
) -> TrainResult:
    """Train ``spec`` briefly on ``data`` and return its validation top-1 (percent).

    With an Optuna ``trial``, each epoch's accuracy is reported (``trial.report``) and the trial is
    pruned (``optuna.TrialPruned``) when ``trial.should_prune()``."""
    if data is None:
        raise ScalelabError("the train accuracy method needs a dataset folder: add --data DIR (ImageFolder layout)")
    if epochs < 1:
        raise ScalelabError(f"epochs must be at least 1, got {epochs}")
    import torch

    from scalelab.build import build_module  # torch: only when a module is built

    tx, ty, vx, vy, classes = load_images(str(data), tuple(spec.input.resolution), spec.input.channels, val_fraction)
    torch.manual_seed(seed)
    model = build_module(with_classes(spec, len(classes)))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    history: list[float] = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(ty), generator=gen)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2:  # batchnorm needs two samples
                continue
            out = model(tx[idx])
            loss = loss_fn(out[0] if isinstance(out, tuple) else out, ty[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        history.append(_evaluate(model, vx, vy, batch_size))
        if trial is not None:
            trial.report(history[-1], epoch)
            if trial.should_prune():
                import optuna

                trial.set_user_attr("pruned_after_epoch", epoch + 1)
                raise optuna.TrialPruned(f"validation top-1 {history[-1]:.1f}% after epoch {epoch + 1}")
    return TrainResult(history[-1], epochs, history, len(classes), len(ty), len(vy), str(data))


def _evaluate(model, xs, ys, batch_size: int) -> float:
    import torch

    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(ys), batch_size):
            pred = model(xs[start:start + batch_size]).argmax(1)
            correct += int((pred == ys[start:start + batch_size]).sum())
    return 100.0 * correct / max(1, len(ys))
