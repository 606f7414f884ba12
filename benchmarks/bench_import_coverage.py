"""Import coverage: the share of each test list that `scalelab import` states exactly, by family.

The lists are the tests' own: the timm families of tests/test_import_timm.py and
tests/test_import_attention.py (every dict of family -> models in them, read without running them)
and every classification model of the installed torchvision (tests/test_import_torchvision.py's
list plus the transformers it leaves out), a torchvision family being the module that defines its
builder. Each model is imported in a process
of its own, with a timeout, at 3x128x128 where the model runs at that size (else at its own input:
timm's pretrained_cfg, torchvision's 3x224x224). Exact means what the tests mean: the spec's
parameters equal sum(p.numel()) and its MACs equal FlopCounterMode's total / 2 for one eval-mode
forward pass with grad enabled and the math attention kernel. A refusal is reported with the first
operator it names.

Results are kept per model in benchmarks/import_coverage.json, so the lists can be run in chunks;
the table is written into benchmarks/import.md from what that file holds.

Run: python benchmarks/bench_import_coverage.py [--lists timm,torchvision] [--models a,b] [--table-only]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "import_coverage.json"
REPORT = HERE / "import.md"
HEADING = "## Which test models import exactly"
SMALL = (3, 128, 128)
TIMEOUT_S = 300


def timm_families() -> dict[str, list[str]]:
    """Every top-level ``NAME = {family: [models]}`` of tests/test_import_timm.py and
    tests/test_import_attention.py (the attention and hybrid models), merged in order."""
    families: dict[str, list[str]] = {}
    for test in ("test_import_timm.py", "test_import_attention.py"):
        families.update(_families_of(ROOT / "tests" / test))
    return families


def _families_of(path: Path) -> dict[str, list[str]]:
    tree = ast.parse(path.read_text())
    families: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            if all(isinstance(v, list) and all(isinstance(m, str) for m in v) for v in value.values()):
                families.update(value)
    return families


def torchvision_families() -> dict[str, list[str]]:
    import torchvision  # the list is the installed torchvision's

    families: dict[str, list[str]] = {}
    for name in torchvision.models.list_models(module=torchvision.models):
        module = torchvision.models.get_model_builder(name).__module__.rsplit(".", 1)[-1]
        families.setdefault(module, []).append(name)
    return families


# ---------------------------------------------------------------- one model, in its own process


def _build(library: str, name: str):
    import torch

    torch.manual_seed(0)
    if library == "timm":
        import timm

        model = timm.create_model(name, pretrained=False).eval()
        return model, tuple(model.pretrained_cfg["input_size"])
    import torchvision

    kwargs = {"init_weights": True} if name in ("googlenet", "inception_v3") else {}
    return torchvision.models.get_model(name, weights=None, **kwargs).eval(), (3, 224, 224)


def _reference_macs(module, x) -> int:
    """tests/conftest.py's reference figure: FlopCounterMode's total / 2, grad on, math attention."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() // 2


def _first_refused(message: str) -> tuple[str, int]:
    """The first operator a refusal names and how many it names."""
    named = re.findall(r"^\s+(\S+) x\d+ \(", message, re.M)
    return (named[0] if named else "?"), len(named)


def one(library: str, name: str) -> dict:
    """Import one model and compare with the module: the row of the results file."""
    import torch

    from scalelab import analyze
    from scalelab.errors import ScalelabError
    from scalelab.importer import import_module

    model, own = _build(library, name)
    size = SMALL
    try:
        with torch.no_grad():
            model(torch.zeros(1, *SMALL))
    except Exception:  # the model needs its own size (a fixed image size, window partitions, ...)
        size = own
    row: dict = {"size": "x".join(map(str, size))}
    start = time.perf_counter()
    try:
        imported = import_module(model, size, name=name)
    except ScalelabError as e:
        text = str(e)
        if "cannot be stated as spec blocks" in text:
            first, count = _first_refused(text)
            return {**row, "status": "refused", "first": first, "operators": count}
        return {**row, "status": "error", "message": text.splitlines()[0][:200]}
    except Exception as e:  # a crash is a finding too: keep its type and first line
        return {**row, "status": "crash", "message": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
    row["import_s"] = round(time.perf_counter() - start, 1)
    result = analyze(imported.spec)
    params = sum(p.numel() for p in model.parameters())
    macs = _reference_macs(model, torch.zeros(1, *size))
    counted = result.total.params + result.training_only_total.params  # heads that never run in eval
    exact = counted == params and result.total.macs == macs
    return {**row, "status": "exact" if exact else "inexact", "params": [counted, params],
            "macs": [result.total.macs, macs]}


# ---------------------------------------------------------------- the run and the table


def run_model(library: str, name: str) -> dict:
    command = [sys.executable, str(Path(__file__)), "--one", library, name]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "message": f"over {TIMEOUT_S} s"}
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "crash", "message": f"exit {out.returncode}: {tail[:200]}"}
    return json.loads(lines[-1])


def lists() -> dict[str, dict[str, list[str]]]:
    return {"timm": timm_families(), "torchvision": torchvision_families()}


def _cell(models: list[str], results: dict, library: str, status: str) -> str:
    rows = [(m, results[f"{library}:{m}"]) for m in models if results.get(f"{library}:{m}", {}).get("status") == status]
    if status == "refused":
        return ", ".join(f"{m} (`{r['first']}`" + (f" +{r['operators'] - 1}" if r["operators"] > 1 else "") + ")"
                         for m, r in rows)
    return ", ".join(f"{m} ({r['status']})" for m, r in rows) if status != "exact" else str(len(rows))


def table(results: dict) -> str:
    from importlib.metadata import version

    lines = [HEADING, "", "Generated by `python benchmarks/bench_import_coverage.py` (results per model in "
             "`benchmarks/import_coverage.json`). Conditions: "
             f"torch {version('torch')}, torchvision {version('torchvision')}, timm {version('timm')}, "
             f"commit {_commit()}, date {time.strftime('%Y-%m-%d', time.gmtime())}.", "",
             f"Each model imported in a process of its own at {'x'.join(map(str, SMALL))} where it runs at that "
             "size, else at its own input (timm's `pretrained_cfg`, torchvision's 3x224x224). Exact: the spec's "
             "parameters (training-only heads included) equal `sum(p.numel())` and its MACs equal "
             "FlopCounterMode's total / 2 (one eval-mode forward pass, grad enabled, the math attention kernel), "
             "as the tests check (the figures only: the tests' round trips, the YAML re-analysed without torch "
             "and the rebuilt module's outputs, are not run here). Refused: the import "
             "names operators no block states (the first is shown, +N the others); it counts none of them as "
             "zero. Other: an error, a crash, an inexact figure or a timeout.", "",
             "| list | family | models | exact | refused (first operator) | other |", "|---|---|---:|---:|---|---|"]
    totals = {}
    for library, families in lists().items():
        for family, models in families.items():
            done = [m for m in models if f"{library}:{m}" in results]
            if not done:
                continue
            exact = _cell(done, results, library, "exact")
            other = ", ".join(filter(None, (_cell(done, results, library, s) for s in ("error", "crash", "inexact", "timeout"))))
            lines.append(f"| {library} | {family} | {len(done)} | {exact} | {_cell(done, results, library, 'refused')} | {other} |")
            n, e = totals.get(library, (0, 0))
            totals[library] = (n + len(done), e + int(exact))
    lines.append("")
    for library, (n, e) in totals.items():
        lines.append(f"- {library}: {e} of {n} import exactly ({100 * e / n:.0f}%).")
    missing = [f"{library}:{m}" for library, families in lists().items() for models in families.values()
               for m in models if f"{library}:{m}" not in results]
    if missing:
        lines.append(f"- Not run this time ({len(missing)}): {', '.join(missing)}.")
    own = sorted(k for k, r in results.items() if r.get("size") and r["size"] != "x".join(map(str, SMALL)))
    if own:
        lines.append(f"- At their own input (they do not run at {'x'.join(map(str, SMALL))}): {', '.join(own)}.")
    return "\n".join(lines) + "\n"


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return out.stdout.strip() or "unknown"


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace the section that starts at ``heading`` (up to the next ``## `` heading) in ``path``, or append it."""
    text = path.read_text() if path.exists() else ""
    start = text.find(heading)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=2, metavar=("LIBRARY", "NAME"), help=argparse.SUPPRESS)
    parser.add_argument("--lists", default="timm,torchvision", help="which lists to run (comma-separated)")
    parser.add_argument("--models", help="only these models (comma-separated)")
    parser.add_argument("--table-only", action="store_true", help="write the table from the results file")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results file to add to")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)), flush=True)
        return
    results = args.results
    if not args.table_only:
        wanted = set(args.models.split(",")) if args.models else None
        for library in args.lists.split(","):
            for family, name in round_robin(lists()[library]):
                if wanted is not None and name not in wanted:
                    continue
                row = run_model(library, name)
                print(library, family, name, row, flush=True)
                # read again before writing: another chunk may be running into the same file
                done = json.loads(results.read_text()) if results.exists() else {}
                results.write_text(json.dumps({**done, f"{library}:{name}": row}, indent=1, sort_keys=True) + "\n")
    held = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    write_section(REPORT, HEADING, table(held))
    print(table(held))


def round_robin(families: dict[str, list[str]]):
    """(family, model) taking one model of each family in turn, so that a run cut short covers every family."""
    for i in range(max(map(len, families.values()), default=0)):
        for family, models in families.items():
            if i < len(models):
                yield family, models[i]


if __name__ == "__main__":
    main()
