"""The lake's layout: written by the Spark job's `archive` and `outcomes` queries, read by training.
One definition.

    <lake_dir>/<folder>/date=<YYYY-MM-DD>/batch=<run>-<micro-batch, 6 digits>/part-*.parquet

`folder` is the input's name (FOLDERS: applications, history, truth). `<run>` is the id of the query
that archives it (archive: applications and history; outcomes: truth) from its checkpoint, so a
reset checkpoint never overwrites an earlier run; a replayed micro-batch rewrites only its own
`batch=` folder. Readers take the files in the order they were written (modification time, then
path), so where an event was archived twice they can keep the last copy (history: a correction) or
the first (applications: the stream dead-letters a repeated id).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from core.errors import DataError

FOLDERS = ("applications", "history", "truth")  # one per input topic, named after it
PARTITIONS = ("date", "batch")


def batch(run_id: str, batch_id: int) -> str:
    """The `batch=` partition value of micro-batch `batch_id` of run `run_id`."""
    return f"{run_id}-{batch_id:06d}"


def files(folder: Path) -> list[Path]:
    """The Parquet files under `folder`, oldest write first. Hidden paths (Spark's `.spark-staging-*`
    folders of a write in progress, `_temporary`) are not the lake's yet, and a file that moves
    while the folder is listed is left for the next read."""
    found = []
    for parent, dirs, names in os.walk(folder):  # a folder that vanishes mid-walk is skipped
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        for name in names:
            if name.startswith((".", "_")) or not name.endswith(".parquet"):
                continue
            path = Path(parent, name)
            try:
                found.append((path.stat().st_mtime_ns, str(path), path))
            except FileNotFoundError:
                continue
    return [path for *_, path in sorted(found)]


def read(folder: Path, key: str, keep: str = "last") -> pd.DataFrame:
    """Every event archived under `folder`, one per `key`: the last copy written (a correction), or
    with keep="first" the first (for applications: a repeat of an id is a dead letter in the stream)."""
    paths = files(folder)
    if not paths:
        raise DataError(f"no Parquet files under {folder}; run the Spark job (make spark-app-single) first")
    try:
        frame = pd.concat([pd.read_parquet(f) for f in paths], ignore_index=True)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the lake at {folder}: {exc}") from exc
    return frame.drop_duplicates(key, keep="first" if keep == "first" else "last").reset_index(drop=True)
