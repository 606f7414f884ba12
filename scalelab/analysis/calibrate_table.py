"""`calibrate --from-table`: fit a GPU profile on a published benchmark table, for a GPU not at hand.

The table is timm's results CSV (``huggingface/pytorch-image-models``, ``results/benchmark-infer-*.csv``:
``model, infer_img_size, infer_batch_size, infer_samples_per_sec``, other columns ignored; lines starting
with ``#`` are comments); other column names are mapped by the caller. Each row is one network at one
input size and batch, with the time per batch its throughput implies (batch / samples per second).

Each model is resolved to a spec: the zoo's where the zoo spec is that network
(``latency_published.builder``: timm's ``resnet50`` is the zoo's ``resnet50``, ``mobilenetv2_100`` its
``mobilenet_v2``), else imported from timm (``scalelab.importer.import_model("timm:NAME")`` at the row's
input size, cached on disk per (model, size, scalelab version) in ``timing_cache``'s imports file). A model
that resolves to neither is named with the reason and skipped, never guessed.

The fit is ``latency_eager_fit.fit_profile``, the one that fits the shipped GPU profiles: the
datasheet figures of the ``--device`` profile stay, its unknowns are fitted, and each regime's
held-out error is leave one network out.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from scalelab import __version__, progress
from scalelab.analysis import timing_cache
from scalelab.analysis.latency import predict_latency
from scalelab.analysis.latency_eager_fit import fit_profile
from scalelab.analysis.latency_published import PublishedRow, builder
from scalelab.devices import DeviceProfile
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.graph.network import Network
from scalelab.spec import Spec, parse_spec

#: what the fit needs from a row -> timm's column name (``--column KEY=NAME`` maps another)
COLUMNS = {"model": "model", "img_size": "infer_img_size", "batch": "infer_batch_size",
           "throughput": "infer_samples_per_sec"}


@dataclass(frozen=True)
class TableRow:
    model: str
    img_size: int
    batch: int
    throughput: float  # samples per second
    line: int  # in the file, for messages


@dataclass
class FromTable:
    """The fitted profile and what the fit saw: rows kept, models skipped (model -> why), the fit's own error."""

    profile: DeviceProfile
    rows: list[PublishedRow]
    skipped: dict[str, str] = field(default_factory=dict)
    fit_errors: list[float] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)


def column_map(pairs: list[str]) -> dict[str, str]:
    """COLUMNS with ``KEY=NAME`` pairs applied (``--column model=arch``)."""
    out = dict(COLUMNS)
    for pair in pairs:
        key, sep, name = pair.partition("=")
        if not sep or not name.strip():
            raise ScalelabError(f"--column {pair!r}: write KEY=NAME, KEY one of {', '.join(COLUMNS)}")
        if key.strip() not in COLUMNS:
            raise ScalelabError(f"--column {pair!r}: unknown key {key.strip()!r}; the keys are {', '.join(COLUMNS)}")
        out[key.strip()] = name.strip()
    return out


def read_table(path: Path, columns: dict[str, str]) -> list[TableRow]:
    """The table's rows; a missing column or a value that is not a positive number is refused with
    the file, the line and the column named."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # a spreadsheet's byte-order mark is not a column's
            lines = [(i, line) for i, line in enumerate(f, 1) if line.strip() and not line.startswith("#")]
    except (OSError, UnicodeDecodeError) as exc:
        raise ScalelabError(f"--from-table {path}: cannot read it ({exc})") from None
    if not lines:
        raise ScalelabError(f"--from-table {path}: the table is empty")
    reader = csv.DictReader(line for _, line in lines)
    have = reader.fieldnames or []
    missing = [f"{key} ('{name}')" for key, name in columns.items() if name not in have]
    if missing:
        raise ScalelabError(f"--from-table {path}: no column for {', '.join(missing)}; the table has "
                            f"{', '.join(have)}; map another column with --column KEY=NAME")
    rows = []
    for (number, _), record in zip(lines[1:], reader):
        values = {}
        for key in ("img_size", "batch", "throughput"):
            text = (record.get(columns[key]) or "").strip()
            try:
                value = float(text)
            except ValueError:
                value = float("nan")
            if not 0 < value < math.inf or (key != "throughput" and value != int(value)):
                kind = "a positive number" if key == "throughput" else "a positive whole number"
                raise ScalelabError(f"{path}:{number}: column '{columns[key]}' ({key}) must be {kind}, got {text!r}")
            values[key] = value
        model = (record.get(columns["model"]) or "").strip()  # a short row has no value there
        if not model:
            raise ScalelabError(f"{path}:{number}: column '{columns['model']}' (model) is empty")
        rows.append(TableRow(model, int(values["img_size"]), int(values["batch"]),
                             values["throughput"], number))
    return rows


def select(rows: list[TableRow], models: Optional[list[str]], pattern: Optional[str]) -> list[TableRow]:
    """The rows of the named ``models`` and/or whose model matches the shell ``pattern`` (``resnet*``);
    a named model the table does not hold is refused."""
    if models:
        absent = [m for m in models if m not in {r.model for r in rows}]
        if absent:
            raise ScalelabError(f"--models: the table has no rows for {', '.join(absent)}")
        rows = [r for r in rows if r.model in models]
    if pattern:
        rows = [r for r in rows if fnmatch.fnmatchcase(r.model, pattern)]
    if not rows:
        raise ScalelabError("--from-table: no row is left to fit on" + (f" (--filter {pattern!r} matches none)"
                                                                         if pattern else ""))
    return rows


def _import_key(model: str, size: int) -> str:
    return hashlib.sha256(json.dumps(["timm", model, size, __version__]).encode()).hexdigest()[:32]


def _import(ref: str, input_shape: tuple[int, int, int]) -> str:
    """The YAML of the spec ``scalelab import`` writes for ``ref`` at ``input_shape``."""
    from scalelab.importer import import_model  # torch and timm: only for a model the zoo does not hold

    return import_model(ref, input_shape).text


def _imported(model: str, size: int, use_cache: bool) -> tuple[Optional[Spec], str]:
    """The spec of timm's ``model`` imported at ``size`` (from the cache where it was imported before),
    or None and why not."""
    path, key, ref = timing_cache.import_cache_file(), _import_key(model, size), f"timm:{model}"
    found = timing_cache.lookup_import(path, key) if use_cache else None
    if found is None:
        try:
            found = (_import(ref, (3, size, size)), None)
        except Exception as exc:  # noqa: BLE001  one model's failure, whatever it is, skips that model, not the table
            found = (None, (str(exc).splitlines() or [type(exc).__name__])[0])
        timing_cache.store_import(path, key, *found)
    text, refusal = found
    if text is None:
        return None, f"not in the zoo, and importing {ref} failed: {refusal}"
    return parse_spec(text, f"<{ref}>"), ""


def resolve_models(rows: list[TableRow], use_cache: bool = True) -> tuple[dict[tuple[str, int], Network],
                                                                          dict[str, str], list[str]]:
    """Each (model, size) resolved: the zoo's spec where it is that network, else imported from timm.
    Returns the networks, the models skipped (model -> why) and the models imported."""
    wanted = sorted({(r.model, r.img_size) for r in rows})
    networks: dict[tuple[str, int], Network] = {}
    skipped: dict[str, str] = {}
    imported: list[str] = []
    with progress.progress("calibrate --from-table: resolving models", len(wanted)) as steps:
        for model, size in wanted:
            steps.say(f"calibrate --from-table: resolving {model} @{size}")
            build = builder(model.split(".")[0])  # a pretrained tag (resnet50.a1_in1k) does not change the network
            if build is not None:
                networks[(model, size)] = resolve(build(), size)
            else:
                spec, why = _imported(model, size, use_cache)
                if spec is None:
                    skipped[model] = why
                else:
                    networks[(model, size)] = resolve(spec, size)
                    imported.append(model)
            steps.advance()
    return networks, skipped, sorted(set(imported))


def fit_table(path: Path, base: DeviceProfile, name: str, dtype: str = "amp", columns: Optional[dict] = None,
              models: Optional[list[str]] = None, pattern: Optional[str] = None, use_cache: bool = True) -> FromTable:
    """Fit ``base``'s unknowns on the table at ``path`` (measured in ``dtype``); the profile is named ``name``."""
    if base.kind != "gpu":
        raise ScalelabError(f"--device {base.name}: --from-table fits a GPU profile (eager host and device "
                            f"timelines); {base.name} is a {base.kind} profile")
    if dtype not in base.peak_flops and dtype != "amp":
        raise ScalelabError(f"--dtype {dtype}: device '{base.name}' has no {dtype} figure")
    rows = select(read_table(path, columns or COLUMNS), models, pattern)
    networks, skipped, imported = resolve_models(rows, use_cache)
    kept = [PublishedRow(path.stem, r.model, r.img_size, base.name, dtype, r.batch, 1e3 * r.batch / r.throughput)
            for r in rows if (r.model, r.img_size) in networks]
    if len({r.network for r in kept}) < 2:
        raise ScalelabError(f"--from-table {path}: {len({r.network for r in kept})} model(s) resolved; a fit with "
                            f"one network held out needs at least 2" + _skipped_text(skipped))
    source = f"{path.name}, {len(kept)} rows"
    fitted = fit_profile(base, kept, source, borrowed_host_us=base.host_us,
                         networks=lambda model, size: networks[(model, size)])
    errors = [abs(predict_latency(networks[r.key[:2]], fitted, dtype, r.batch).total_ms / r.ms - 1) for r in kept]
    calibration = {"table": path.name, "dtype": dtype, "rows": len(kept), "networks": len({r.network for r in kept}),
                   "imported": imported, "skipped": skipped, "fit_median_error": round(statistics.median(errors), 4),
                   "fit_max_error": round(max(errors), 4)}
    # the fitted figures' source names the user's table, not the published rows shipped with scalelab
    sources = {k: v.replace(f"({source}; scalelab/devices/published)", f"({path})") for k, v in fitted.sources.items()}
    profile = fitted.model_copy(update={"name": name, "calibration": calibration, "sources": sources, "description":
                                        f"{base.description}; unknowns fitted on {path.name} (calibrate --from-table)"})
    return FromTable(profile, kept, skipped, errors, imported)


def _skipped_text(skipped: dict[str, str]) -> str:
    return ("; skipped: " + "; ".join(f"{m} ({why})" for m, why in skipped.items())) if skipped else ""
