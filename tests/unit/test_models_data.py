"""Training data: terminal outcomes only, and a temporal split that never mixes the past and future."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core import lake
from core.errors import DataError
from generator.history import synthetic_history
from models.training.data import DESIGN_SPLIT, TrainingSource, fingerprint, load, temporal_split, terminal


@pytest.mark.parametrize(
    ("seed", "rows", "shares"), [(1, 2_000, (0.15, 0.15)), (2, 5_000, (0.3, 0.1)), (3, 800, (0.1, 0.2))]
)
def test_no_test_loan_precedes_a_training_or_validation_loan(
    seed: int, rows: int, shares: tuple[float, float]
) -> None:
    frame = terminal(synthetic_history(seed, rows))
    split = temporal_split(frame, shares=shares)
    assert split.train["issue_d"].max() < split.valid["issue_d"].min()
    assert split.valid["issue_d"].max() < split.test["issue_d"].min()
    assert len(split.train) + len(split.valid) + len(split.test) == len(frame)
    assert not set(split.train["id"]) & set(split.test["id"])
    assert split.valid_start < split.test_start


def test_split_by_dates_follows_the_design_dates() -> None:
    frame = terminal(synthetic_history(4, 6_000))
    split = temporal_split(frame, DESIGN_SPLIT)
    assert split.train["issue_d"].max() < pd.Timestamp("2011-01-01") <= split.valid["issue_d"].min()
    assert split.valid["issue_d"].max() < pd.Timestamp("2011-05-01") <= split.test["issue_d"].min()


def test_a_split_leaving_a_part_empty_says_how_to_fix_it() -> None:
    frame = terminal(synthetic_history(5, 1_000))
    with pytest.raises(DataError, match="choose other split dates"):
        temporal_split(frame, (date(2012, 1, 1), date(2013, 1, 1)))
    with pytest.raises(DataError, match="before test"):
        temporal_split(frame, (date(2011, 5, 1), date(2011, 1, 1)))


def test_only_terminal_loans_train_and_the_label_is_charged_off() -> None:
    frame = synthetic_history(6, 500)
    frame["loan_status"] = frame["loan_status"].astype(object)
    frame.loc[:9, "loan_status"] = "Current"
    frame.loc[10:19, "loan_status"] = "Does not meet the credit policy. Status:Charged Off"
    frame["total_pymnt"] = 1.0  # outcome columns are dropped, never carried along
    done = terminal(frame)
    assert len(done) == 490
    assert "total_pymnt" not in done.columns
    assert done["default"].to_numpy()[:10].tolist() == [1] * 10
    expected = frame["loan_status"].iloc[10:].str.endswith("Charged Off").to_numpy(dtype=np.int8)
    np.testing.assert_array_equal(done["default"].to_numpy(), expected)


def test_synthetic_source_is_deterministic_and_sampled_rows_keep_time_order() -> None:
    a = load(TrainingSource.synthetic(rows=1_500, seed=9))
    b = load(TrainingSource.synthetic(rows=1_500, seed=9))
    assert fingerprint(a) == fingerprint(b)
    assert a["issue_d"].is_monotonic_increasing
    assert fingerprint(a) != fingerprint(load(TrainingSource.synthetic(rows=1_500, seed=10)))


def test_missing_paths_say_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--path"):
        load(TrainingSource.lending_club(tmp_path / "nonexistent"))
    with pytest.raises(DataError, match="no Parquet files"):
        load(TrainingSource.lake(tmp_path))


def test_lake_source_reads_the_jobs_layout_and_keeps_the_last_copy_written(tmp_path: Path) -> None:
    history = synthetic_history(7, 400)
    folder = tmp_path / "history" / "date=2011-01-01"
    first, second = folder / f"batch={lake.batch('run-b', 9)}", folder / f"batch={lake.batch('run-a', 0)}"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    history.iloc[:300].to_parquet(first / "part-0.parquet")
    replay = history.iloc[250:].copy()
    replay["loan_status"] = "Fully Paid"
    replay.to_parquet(second / "part-0.parquet")  # written later, though its run sorts first by name
    frame = load(TrainingSource.lake(tmp_path))
    assert len(frame) == 400
    assert (frame.set_index("id").loc[history["id"].iloc[260], "loan_status"]) == "Fully Paid"
    assert len(load(TrainingSource.lake(tmp_path / "history"))) == 400  # the history folder alone


def test_a_write_in_progress_is_not_read(tmp_path: Path) -> None:
    history = synthetic_history(8, 200)
    done = tmp_path / "history" / "date=2011-01-01" / f"batch={lake.batch('run', 0)}"
    staging = tmp_path / "history" / ".spark-staging-1" / "date=2011-01-01" / f"batch={lake.batch('run', 1)}"
    for folder, part in ((done, history.iloc[:150]), (staging, history.iloc[150:])):
        folder.mkdir(parents=True)
        part.to_parquet(folder / "part-0.parquet")
    assert len(lake.read(tmp_path / "history", "id")) == 150


def test_a_staging_folder_is_never_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spark removes its staging folder as the write commits: a reader that lists it can race the
    removal (CI saw FileNotFoundError from inside the listing), so the walk never enters it."""
    history = synthetic_history(8, 100)
    done = tmp_path / "history" / "date=2011-01-01" / f"batch={lake.batch('run', 0)}"
    staging = tmp_path / "history" / ".spark-staging-2" / "date=2011-01-01"
    for folder in (done, staging):
        folder.mkdir(parents=True)
        history.to_parquet(folder / "part-0.parquet")
    scandir = os.scandir

    def vanishing(path: Any) -> Any:
        if ".spark-staging" in str(path):
            raise FileNotFoundError(path)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", vanishing)
    assert len(lake.read(tmp_path / "history", "id")) == 100
