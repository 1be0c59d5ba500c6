"""Per-run outputs: the ROOT nTuple (uproot) and the JSON summary."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Columns = dict[str, npt.NDArray[Any]]

#: Columns stored as integers in the nTuple; everything else is float32 (the
#: event store holds generator momenta as C floats already).
INTEGER_COLUMNS = frozenset(
    {
        "mcparticle_id",
        "genevent_id",
        "evt",
        "pid",
        "charge",
        "accepted",
        "reconstructed",
        "mc_key",
        "track_type",
        "nDoF",
        "mother_pid",
        "mother_key",
        "gmother_pid",
        "gmother_key",
        "event",
        "n_long",
        "run",
    }
)


def _typed(columns: Columns) -> Columns:
    return {
        name: values.astype(np.int64) if name in INTEGER_COLUMNS else values.astype(np.float32)
        for name, values in columns.items()
        if name not in ("mcparticle_id", "genevent_id")  # per-batch ids, meaningless later
    }


def _publish(tmp: str, path: Path) -> None:
    """Give a temporary file the umask's permissions (mkstemp makes it 0600), rename it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def write_ntuple(path: Path, trees: dict[str, Columns], provenance: dict[str, Any]) -> None:
    """Write one TTree per table and the provenance as a JSON string (TObjString).

    The file is written beside its final name and renamed, so a crash never
    leaves a truncated nTuple under the final name.
    """
    import uproot

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        # TTrees (mktree), readable by every ROOT version; uproot >= 5.7 would
        # write RNTuples on plain assignment. ZSTD level 1 (ROOT >= 6.20 reads
        # it): a quarter of zlib level 1's CPU here, for a slightly smaller file.
        with uproot.recreate(tmp, compression=uproot.ZSTD(1)) as root:
            for name, columns in trees.items():
                root.mktree(name, _typed(columns))
            root["provenance"] = json.dumps(provenance, sort_keys=True)
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    _publish(tmp, path)


def summarise(trees: dict[str, Columns], events: int) -> dict[str, Any]:
    """Events, tracks and efficiencies of one run."""
    mc = trees["MCTracks"]
    n_mc = len(mc["p"])
    extra: dict[str, Any] = {}
    if "track_type" in mc:  # LHCb's chain: -1 outside the acceptance, 0 not reconstructed
        n_acc = int(np.sum(mc["track_type"] >= 0))
        n_reco = int(np.sum(mc["track_type"] >= 3))
        extra["track_types"] = {
            name: int(np.sum(mc["track_type"] == code))
            for code, name in ((3, "long"), (4, "upstream"), (5, "downstream"))
        }
    else:
        n_acc = int(np.sum(mc["accepted"]))
        n_reco = int(np.sum(mc["reconstructed"]))
    if "Candidates" in trees:
        extra["signal_candidates"] = len(trees["Candidates"]["mass"])
    return {
        **extra,
        "events": events,
        "charged_particles": n_mc,
        "accepted": n_acc,
        "tracks": len(trees["Tracks"]["p"]),
        "primary_vertices": len(trees["PVs"]["z"]),
        "efficiency": n_reco / n_acc if n_acc else None,
        "acceptance_x_efficiency": n_reco / n_mc if n_mc else None,
    }
