"""Merge the nTuples of many runs into one file, keeping the provenance of every input.

Each tree of the inputs is concatenated with a ``run`` column added, and the truth
links (``mc_key`` of ``Tracks`` and ``MCTracks``) shifted so that they point at the
merged ``MCTracks``. The file's ``provenance`` holds, for every input: its path,
SHA-256, run number, the entry range of each tree in the merged file, and the
input's own provenance. The counts are checked by reading the written file back.

As a campaign step (``merge --spec``) it merges the nTuples of every ``generate`` task
into ``out_dir/lamarr_merged.root`` and writes ``out_dir/metrics.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InputError
from .manifest import sha256_file
from .output import write_json, write_ntuple
from .spec import read_spec, spec_out_dir, upstream_dirs

Columns = dict[str, npt.NDArray[Any]]
TREES = ("MCTracks", "Tracks", "PVs", "Candidates")
MERGED_NAME = "lamarr_merged.root"
METRICS_NAME = "metrics.json"


def ntuple_files(paths: list[Path]) -> list[Path]:
    """The nTuples named: files, or every ``lamarr_run*.root`` below a directory."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.rglob("lamarr_run*.root"))
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such nTuple or directory")
    if not files:
        raise InputError(f"no lamarr_run*.root under {', '.join(map(str, paths))}")
    return files


def read_ntuple(path: Path) -> tuple[dict[str, Columns], dict[str, Any]]:
    """Every tree of an nTuple as numpy arrays, and its provenance."""
    import uproot

    try:
        with uproot.open(path) as root:
            trees = {name: root[name].arrays(library="np") for name in TREES if name in root}
            provenance = json.loads(str(root["provenance"]))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a readable Lamarr nTuple: {exc}") from exc
    return trees, provenance


def merge(inputs: list[Path], output: Path) -> dict[str, Any]:
    """Merge the nTuples ``inputs`` into ``output``; return the index written beside it.

    Raises
    ------
    InputError
        An unreadable input, two inputs of the same run, inputs with different
        trees or columns, or a merged file whose counts differ from the inputs'.
    """
    files = ntuple_files(inputs)
    parts: dict[str, list[Columns]] = {}
    index: list[dict[str, Any]] = []
    seen: dict[int, Path] = {}
    offsets = dict.fromkeys(TREES, 0)
    for path in files:
        trees, provenance = read_ntuple(path)
        run = int(provenance["run"])
        if run in seen:
            raise InputError(f"{path}: run {run} is also in {seen[run]}; each run merges once")
        seen[run] = path
        ranges = {}
        for name, columns in trees.items():
            n = len(next(iter(columns.values()))) if columns else 0
            columns = dict(columns)
            columns["run"] = np.full(n, run, dtype=np.int64)
            if "mc_key" in columns:
                columns["mc_key"] = columns["mc_key"] + offsets["MCTracks"]
            if parts.get(name) and set(parts[name][0]) != set(columns):
                raise InputError(f"{path}: tree {name} has other columns than {files[0]}")
            parts.setdefault(name, []).append(columns)
            ranges[name] = [offsets[name], offsets[name] + n]
        for name, (_, stop) in ranges.items():
            offsets[name] = stop
        index.append(
            {
                "path": str(path),
                "sha256": sha256_file(path),
                "run": run,
                "entries": ranges,
                "provenance": provenance,
            }
        )
    merged = {
        name: {c: np.concatenate([p[c] for p in ps]) for c in ps[0]} for name, ps in parts.items()
    }
    record = {"merged_from": index, "runs": sorted(seen), "entries": offsets}
    output.parent.mkdir(parents=True, exist_ok=True)
    write_ntuple(output, merged, record)
    back, _ = read_ntuple(output)
    for name, columns in merged.items():
        expected = sum(len(p["run"]) for p in parts[name])
        got = len(back[name]["run"])
        if got != expected or len(columns["run"]) != expected:
            raise InputError(f"{output}: {name} holds {got} entries, the inputs {expected}")
    summary = {
        "output": str(output),
        "runs": sorted(seen),
        "entries": {k: v for k, v in offsets.items() if k in merged},
    }
    write_json(
        output.with_suffix(".json"),
        {**summary, "inputs": [{k: v for k, v in i.items() if k != "provenance"} for i in index]},
    )
    return summary


def merge_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The numbers the run report shows for a merge: runs and entries per tree."""
    runs = summary["runs"]
    metrics: dict[str, float] = {"runs": len(runs), "first_run": min(runs), "last_run": max(runs)}
    for tree, entries in summary["entries"].items():
        metrics[f"entries_{tree}"] = entries
    return metrics


def merge_task(spec_path: str | Path) -> dict[str, Any]:
    """The campaign's merge step: every ``generate`` task's nTuple into one file.

    Reads ``upstream.generate`` of the spec at ``spec_path``, writes
    ``out_dir/lamarr_merged.root`` (its index ``lamarr_merged.json`` beside it) and
    ``out_dir/metrics.json``. A generate task of a banned run left no nTuple and adds
    nothing.
    """
    spec = read_spec(spec_path)
    inputs = upstream_dirs(spec, spec_path, "generate")
    out_dir = spec_out_dir(spec, spec_path)
    summary = merge(inputs, out_dir / MERGED_NAME)
    write_json(out_dir / METRICS_NAME, merge_metrics(summary))
    return summary
