"""Analysis speed, side by side with fvcore and ptflops on the same models.

(a) Whole process: `scalelab analyze resnet50 --format json` against a process that imports torch and
    torchvision, builds the model and counts with fvcore (or ptflops): wall time and peak RSS.
(b) In process: time to count one model (median of repeats). scalelab: spec text already loaded, then
    parse + graph + shapes + costs; fvcore / ptflops: model already built, then count.

Writes benchmarks/analyze.md. Run: python benchmarks/bench_analyze.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOAD_BEFORE = os.getloadavg()
RESULTS = HERE / "analyze.md"
AFTER_RUN = "Load average after the run:"

# (label, zoo spec, resolution, torchvision builder)
MODELS = [
    ("resnet50", "resnet50", 224, "resnet50"),
    ("resnet152", "resnet152", 224, "resnet152"),
    ("efficientnet_b0", "efficientnet_b0", 224, "efficientnet_b0"),
    ("mobilenet_v2", "mobilenet_v2", 224, "mobilenet_v2"),
    ("vgg16", "vgg16", 224, "vgg16"),
    # EfficientNet-B7-sized work: B0's graph at B7's 600x600 input
    ("efficientnet_b0 @600", "efficientnet_b0", 600, "efficientnet_b0"),
]

# Runs a command and reports its wall time and peak resident set size (of that child only).
_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "dt = time.perf_counter() - t\n"
    "print(r.returncode, dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)

_FVCORE_JOB = (
    "import torch, torchvision\n"
    "from fvcore.nn import FlopCountAnalysis\n"
    "m = torchvision.models.resnet50().eval()\n"
    "a = FlopCountAnalysis(m, torch.zeros(1, 3, 224, 224))\n"
    "a.unsupported_ops_warnings(False); a.uncalled_modules_warnings(False)\n"
    "print(a.total())\n"
)
_PTFLOPS_JOB = (
    "import torchvision\n"
    "from ptflops import get_model_complexity_info\n"
    "m = torchvision.models.resnet50().eval()\n"
    "print(get_model_complexity_info(m, (3, 224, 224), as_strings=False, print_per_layer_stat=False))\n"
)


def scalelab_command() -> list[str]:
    script = Path(sys.executable).with_name("scalelab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "scalelab"]


def whole_process(command: list[str], runs: int, env: "dict | None" = None) -> tuple[float, float, float]:
    """Median wall seconds, fastest wall seconds (the least disturbed by other load) and median peak
    RSS (MiB) of ``command`` over ``runs`` fresh processes."""
    times, rss = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, check=True,
                             env=env)
        code, seconds, kib = out.stdout.split()
        if code != "0":
            raise SystemExit(f"{command} exited {code}")
        times.append(float(seconds))
        rss.append(int(kib) / 1024)
    return statistics.median(times), min(times), statistics.median(rss)


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up: first-call caches, lazy imports
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def in_process(quick: bool) -> list[dict]:
    import torch
    import torchvision
    from fvcore.nn import FlopCountAnalysis
    from ptflops import get_model_complexity_info

    from scalelab import analyze, parse_spec
    from scalelab.spec import zoo_path

    rows = []
    for label, spec_name, res, tv_name in MODELS:
        if not zoo_path(spec_name).is_file():
            rows.append({"model": label, "missing": True})
            continue
        text = zoo_path(spec_name).read_text()
        ours = analyze(parse_spec(text, spec_name), resolution=res)
        t_scalelab = median_time(lambda: analyze(parse_spec(text, spec_name), resolution=res), 5 if quick else 30)

        model = getattr(torchvision.models, tv_name)().eval()
        x = torch.zeros(1, 3, res, res)

        def fvcore_count():
            a = FlopCountAnalysis(model, x)
            a.unsupported_ops_warnings(False)
            a.uncalled_modules_warnings(False)
            return a

        counted = fvcore_count()
        by_op = counted.by_operator()
        fv_conv_linear = sum(v for k, v in by_op.items() if k in ("conv", "linear", "addmm", "matmul", "bmm"))
        t_fvcore = median_time(lambda: fvcore_count().total(), 1 if quick else 3)

        def ptflops_count():
            return get_model_complexity_info(model, (3, res, res), as_strings=False, print_per_layer_stat=False)

        pt_macs, pt_params = ptflops_count()
        t_ptflops = median_time(ptflops_count, 1 if quick else 3)
        rows.append({
            "model": label, "missing": False,
            "params": ours.total.params, "macs": ours.total.macs, "torch_params": sum(p.numel() for p in model.parameters()),
            "fvcore_total": counted.total(), "fvcore_conv_linear": fv_conv_linear, "ptflops_macs": int(pt_macs),
            "t_scalelab": t_scalelab, "t_fvcore": t_fvcore, "t_ptflops": t_ptflops,
        })
    return rows


def conditions() -> list[str]:
    import fvcore  # noqa: F401
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    return [
        f"CPU: {cpu}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}",
        f"Python {platform.python_version()} on {platform.system()} {platform.release()}",
        f"torch {torch.__version__}, torchvision {version('torchvision')}, fvcore {version('fvcore')}, "
        f"ptflops {version('ptflops')}, scalelab {version('scalelab')}",
        f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average before the run "
        f"{LOAD_BEFORE[0]:.1f} (1 min) on {os.cpu_count()} cores: other processes share the CPU when it exceeds 0",
    ]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs = 2 if args.quick else 9

    print("whole process ...", flush=True)
    ours = whole_process([*scalelab_command(), "analyze", "resnet50", "--format", "json"], runs)
    fv = whole_process([sys.executable, "-c", _FVCORE_JOB], max(1, runs - 2))
    pt = whole_process([sys.executable, "-c", _PTFLOPS_JOB], max(1, runs - 2))
    print("in process ...", flush=True)
    rows = in_process(args.quick)

    lines = [
        "# Analysis speed: scalelab vs fvcore and ptflops",
        "",
        "Generated by `python benchmarks/bench_analyze.py`. Conditions:",
        "",
        *[f"- {c}" for c in conditions()],
        "",
        "## (a) Whole process: ResNet-50 at 224, batch 1",
        "",
        f"Median of {runs} fresh processes for scalelab, {max(1, runs - 2)} for the others; peak RSS of the "
        "process itself. fvcore and ptflops import torch and torchvision, build the model and count.",
        "",
        "| job | median wall time | fastest | peak RSS | time vs scalelab (median) | memory vs scalelab |",
        "|---|---:|---:|---:|---:|---:|",
        f"| `scalelab analyze resnet50 --format json` | {ms(ours[0])} | {ms(ours[1])} | {ours[2]:.0f} MiB | 1x | 1x |",
        f"| fvcore `FlopCountAnalysis` | {ms(fv[0])} | {ms(fv[1])} | {fv[2]:.0f} MiB | {fv[0] / ours[0]:.1f}x | {fv[2] / ours[2]:.1f}x |",
        f"| ptflops `get_model_complexity_info` | {ms(pt[0])} | {ms(pt[1])} | {pt[2]:.0f} MiB | {pt[0] / ours[0]:.1f}x | {pt[2] / ours[2]:.1f}x |",
        "",
        "## (b) In process: counting one model",
        "",
        "scalelab: median of 30 runs of parse + graph + shapes + costs from the spec text. fvcore and "
        "ptflops: median of 3 counts of an already built torchvision model (building it is not timed).",
        "",
        "| model | input | scalelab | fvcore | ptflops | fvcore / scalelab | ptflops / scalelab |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (label, _, res, _), r in zip(MODELS, rows):
        if r["missing"]:
            lines.append(f"| {label} | {res} | no zoo spec yet | | | | |")
            continue
        lines.append(f"| {label} | {res} | {ms(r['t_scalelab'])} | {ms(r['t_fvcore'])} | {ms(r['t_ptflops'])} | "
                     f"{r['t_fvcore'] / r['t_scalelab']:.0f}x | {r['t_ptflops'] / r['t_scalelab']:.0f}x |")
    lines += [
        "",
        "## The counts compared",
        "",
        "scalelab MACs are conv + linear multiply-adds, bias excluded. fvcore's conv + linear handles count the "
        "same thing; its total also charges batchnorm, pooling and elementwise ops it has handles for. ptflops "
        "adds batchnorm, activations, pooling and biases to its MACs.",
        "",
        "| model | input | scalelab params | torch params | scalelab MACs | fvcore conv+linear | equal | fvcore total | ptflops MACs |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for (label, _, res, _), r in zip(MODELS, rows):
        if r["missing"]:
            continue
        lines.append(f"| {label} | {res} | {r['params']:,} | {r['torch_params']:,} | {r['macs']:,} | "
                     f"{r['fvcore_conv_linear']:,} | {'yes' if r['fvcore_conv_linear'] == r['macs'] else 'NO'} | "
                     f"{r['fvcore_total']:,} | {r['ptflops_macs']:,} |")
    lines += ["", f"Load average after the run: {os.getloadavg()[0]:.1f} (1 min)."]
    previous = args.output.read_text() if args.output.exists() else ""
    # sections other benchmarks add after this one's last line (bench_startup.py, bench_analyze_vs.py) stay
    tail = previous.split(AFTER_RUN, 1)[1].split("\n", 1)[1] if AFTER_RUN in previous else ""
    args.output.write_text("\n".join(lines) + "\n" + tail)
    print(args.output.read_text())


if __name__ == "__main__":
    main()
