"""In-process analysis speed of this tree against an earlier revision, measured in one run.

The revision's ``scalelab`` package is extracted with ``git archive`` into a temporary folder. Both
sides time the same thing as part (b) of bench_analyze.py (parse + graph + shapes + costs from the
spec text, warm), as CPU time of the process (less disturbed than wall time on a shared machine: time
spent waiting for a core is not counted), each in fresh child processes run alternately (before, after, before, ...), so
that a change of machine load hits both alike; each side's figure is its lowest round median.
Writes the section between the markers in benchmarks/analyze.md.

    python benchmarks/bench_analyze_vs.py REV [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "analyze.md"
BEGIN, END = "<!-- analyze-vs: begin -->", "<!-- analyze-vs: end -->"
MODELS = [("resnet50", 224), ("resnet152", 224), ("efficientnet_b0", 224), ("mobilenet_v2", 224), ("vgg16", 224),
          ("googlenet", 224)]

# One child: warm up, then the median of `repeats` analyses per model, as JSON.
_CHILD = """
import json, statistics, sys, time
from scalelab import analyze, parse_spec
from scalelab.spec import zoo_path
repeats, out = int(sys.argv[1]), {}
for name, res in json.loads(sys.argv[2]):
    text = zoo_path(name).read_text()
    analyze(parse_spec(text, name), resolution=res)
    times = []
    for _ in range(repeats):
        t = time.process_time()
        analyze(parse_spec(text, name), resolution=res)
        times.append(time.process_time() - t)
    out[name] = statistics.median(times)
print(json.dumps(out))
"""


def extract(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "scalelab", "specs"], capture_output=True, check=True).stdout
    with tempfile.TemporaryFile() as f:
        f.write(archive)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(into, filter="data")
    return into


def child(path: Path, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(path)}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(repeats), json.dumps(MODELS)], env=env, cwd=path,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def geomean(values: list[float]) -> float:
    return math.prod(values) ** (1 / len(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the earlier revision (a commit or branch)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        before_tree = extract(args.rev, Path(tmp))
        best = {"before": {}, "after": {}}
        for _ in range(args.rounds):
            for side, path in (("before", before_tree), ("after", ROOT)):
                for name, t in child(path, args.repeats).items():
                    best[side][name] = min(best[side].get(name, t), t)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.rev], capture_output=True, text=True,
                            check=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    rows = [f"| {name} | {best['before'][name] * 1e3:.2f} ms | {best['after'][name] * 1e3:.2f} ms | "
            f"{best['after'][name] / best['before'][name]:.2f} |" for name, _ in MODELS]
    section = "\n".join([
        BEGIN,
        "## (c) This tree against an earlier revision",
        "",
        f"`python benchmarks/bench_analyze_vs.py {args.rev}`: {commit} (before) and {head} (after, the working tree), "
        f"CPU time of parse + graph + shapes + costs at 224, each side the lowest of {args.rounds} alternating rounds of "
        f"{args.repeats}-run medians in fresh processes. Load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores: the ratio is what to read, not the times.",
        "",
        "| model | before | after | after / before |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        f"Geometric mean of after / before: {geomean([best['after'][n] / best['before'][n] for n, _ in MODELS]):.2f}.",
        END,
    ])
    text = RESULTS.read_text()
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)
    print(section)


if __name__ == "__main__":
    main()
