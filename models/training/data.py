"""Training data: where it comes from, terminal outcomes only, and the temporal split.

Three sources give the same frame (the CreditFields columns, `id`, `issue_d`, `loan_status`, `default`):
Lending Club CSVs (`core.lending_club.read_history`), the Parquet lake the Spark job writes
(`core.lake`: the archived `loan.history` plus live applications labelled by their outcome from
`loan.truth`), and synthetic Lending-Club-shaped history. Only columns of the
contract are kept, so outcome columns of a raw Lending Club file never travel further.

The split is by `issue_d`: train on the past, validate and test on later months; a month never spans
two parts, so no test loan precedes a training loan.

Then from a temporal split to model inputs (`prepare`): parsed fields, labels and features for each
part. The feature spec is fitted on the training part only, and the training rows' rate features come
out-of-fold; validation and test rows are built exactly as the scorer builds a live application.
Rows that break the contract (e.g. a CSV row with a negative dti) are dropped and counted.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from core import lake
from core.errors import DataError
from core.events import TERMINAL_STATUSES
from core.lending_club import ReadReport, read_history
from generator.history import synthetic_history
from models.features.inputs import FIELDS, Parsed, parse
from models.features.spec import Features, FeatureSpec, build, fit_spec, guard, out_of_fold

log = logging.getLogger(__name__)

META = ("id", "issue_d", "loan_status")
COLUMNS = (*FIELDS, *META, "default")
DESIGN_SPLIT = (date(2011, 1, 1), date(2011, 5, 1))
"""DESIGN.md's split of the Lending Club data: train issued <= 2010, validation 2011-01..04,
test 2011-05..08."""
PARTS = ("train", "valid", "test")


@dataclass(frozen=True)
class TrainingSource:
    """Where training loans come from; build one with `lending_club()`, `lake()` or `synthetic()`.

    `rows` caps the loans used (a seeded random sample, for quick runs); synthetic needs it.
    """

    kind: str
    path: Path | None = None
    rows: int | None = None
    seed: int = 0

    @classmethod
    def lending_club(cls, path: Path, rows: int | None = None, seed: int = 0) -> TrainingSource:
        return cls("lending-club", Path(path), rows, seed)

    @classmethod
    def lake(cls, path: Path, rows: int | None = None, seed: int = 0) -> TrainingSource:
        """`path` is the lake (`SparkJobSettings().lake_dir`): history and labelled live applications."""
        return cls("lake", Path(path), rows, seed)

    @classmethod
    def synthetic(cls, rows: int = 20_000, seed: int = 0) -> TrainingSource:
        return cls("synthetic", None, rows, seed)

    def describe(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"{self.kind}{where}" + (f" ({self.rows:,} rows, seed {self.seed})" if self.rows else "")

    def default_split(self) -> tuple[date, date] | None:
        """DESIGN.md's dates for Lending Club data; month shares for the others."""
        return DESIGN_SPLIT if self.kind == "lending-club" else None


def load(source: TrainingSource) -> pd.DataFrame:
    """Terminal loans of `source` with the `default` label, in issue_d order."""
    if source.kind == "lending-club":
        frame = _lending_club(_need_path(source))
    elif source.kind == "lake":
        frame = _lake(_need_path(source))
    elif source.kind == "synthetic":
        frame = synthetic_history(source.seed, source.rows or 20_000)
    else:
        raise DataError(f"unknown training source {source.kind!r}; choose lending-club, lake or synthetic")
    frame = terminal(frame)
    if source.rows and len(frame) > source.rows:
        frame = frame.sample(source.rows, random_state=source.seed)
    frame = frame.sort_values(["issue_d", "id"], kind="stable").reset_index(drop=True)
    log.info(
        "training data: %s, %d terminal loans (%.1f%% default)",
        source.describe(),
        len(frame),
        100 * frame["default"].mean(),
    )
    return frame


def _need_path(source: TrainingSource) -> Path:
    if source.path is None or not source.path.exists():
        raise DataError(f"{source.kind} data {str(source.path)!r} does not exist; pass --path to the data")
    return source.path


def _lending_club(path: Path) -> pd.DataFrame:
    report = ReadReport()
    loans = read_history(path, report)
    log.info("%s", report.summary())
    if not loans:
        raise DataError(f"no readable loans in {path}: {report.summary()}")
    return pd.DataFrame([loan.model_dump(exclude={"event_time"}) for loan in loans])


def _lake(path: Path) -> pd.DataFrame:
    """The lake the Spark job writes (`core.lake`): its archived history plus the live applications
    whose outcome arrived (`truth`), labelled by it. `path` is the lake or, as before, its history
    folder alone."""
    if not any((path / folder).is_dir() for folder in lake.FOLDERS):
        return lake.read(path, "id")
    parts = [lake.read(path / "history", "id")] if (path / "history").is_dir() else []
    if (path / "applications").is_dir() and (path / "truth").is_dir():
        applications = lake.read(path / "applications", "application_id", keep="first")
        truth = lake.read(path / "truth", "application_id")
        parts.append(labelled(applications, truth))
    if not parts:
        raise DataError(f"the lake at {path} has no history and no applications with outcomes yet")
    return pd.concat(parts, ignore_index=True)


def labelled(applications: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Live applications with their outcome as loans: id = application_id, issued at event_time,
    loan_status from `will_default` (Charged Off / Fully Paid)."""
    joined = applications.merge(truth[["application_id", "will_default"]], on="application_id")
    status = np.where(joined["will_default"].astype(bool), "Charged Off", "Fully Paid")
    log.info("lake: %d of %d live applications have an outcome", len(joined), len(applications))
    issued = pd.to_datetime(joined["event_time"], utc=True).dt.tz_localize(None)
    return joined.assign(id=joined["application_id"], issue_d=issued, loan_status=status)


def terminal(frame: pd.DataFrame) -> pd.DataFrame:
    """Only loans with a final outcome, only the contract's columns, plus `default` (charged off)."""
    missing = [c for c in (*FIELDS, *META) if c not in frame.columns]
    if missing:
        raise DataError(f"training data lacks columns {', '.join(missing)}; expected Lending Club history")
    done = frame[frame["loan_status"].isin(TERMINAL_STATUSES)].copy()
    dropped = len(frame) - len(done)
    if dropped:
        log.info("dropped %d loans without a final outcome (Current, Late, ...)", dropped)
    done["issue_d"] = pd.to_datetime(done["issue_d"]).dt.tz_localize(None).astype("datetime64[ns]")
    done["id"] = done["id"].astype(str)
    done["default"] = done["loan_status"].str.endswith("Charged Off").astype(np.int8)
    guard([c for c in COLUMNS if c not in META and c != "default"])
    return done[list(COLUMNS)]


@dataclass(frozen=True)
class Split:
    """Three time-ordered parts of the training data and the dates that cut them."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    valid_start: date
    test_start: date

    def parts(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def describe(self) -> str:
        def span(df: pd.DataFrame) -> str:
            return f"{df['issue_d'].min():%Y-%m}..{df['issue_d'].max():%Y-%m}"

        return ", ".join(f"{name} {len(df):,} ({span(df)})" for name, df in self.parts().items())


def temporal_split(
    frame: pd.DataFrame, dates: tuple[date, date] | None = None, shares: tuple[float, float] = (0.15, 0.15)
) -> Split:
    """Train < valid_start <= valid < test_start <= test, by issue_d.

    Without `dates`, the cuts fall on month boundaries so that roughly `shares` of the loans end in
    validation and test; every part must get loans, else a `DataError` says how to fix it.
    """
    issued = frame["issue_d"]
    valid_start, test_start = dates or _cuts(issued, shares)
    v, t = pd.Timestamp(valid_start), pd.Timestamp(test_start)
    if v >= t:
        raise DataError(f"validation must start before test; got {valid_start} and {test_start}")
    split = Split(
        frame[issued < v].reset_index(drop=True),
        frame[(issued >= v) & (issued < t)].reset_index(drop=True),
        frame[issued >= t].reset_index(drop=True),
        valid_start,
        test_start,
    )
    for name, part in split.parts().items():
        if len(part) == 0 or part["default"].nunique() < 2:
            raise DataError(
                f"the {name} part (validation from {valid_start}, test from {test_start}) has {len(part)} "
                "loans and needs both outcomes; "
                "choose other split dates or give more data"
            )
    return split


def _cuts(issued: pd.Series, shares: tuple[float, float]) -> tuple[date, date]:
    """Month starts at which the cumulative share of loans passes 1 - valid - test and 1 - test."""
    months = issued.dt.to_period("M")
    counts = months.value_counts().sort_index()
    if len(counts) < 3:
        raise DataError(f"need loans from at least 3 issue months for a temporal split, got {len(counts)}")
    cum = (counts.cumsum() / counts.sum()).to_numpy()
    n = len(counts)
    first_valid = int(np.searchsorted(cum, 1 - shares[0] - shares[1])) + 1
    first_test = int(np.searchsorted(cum, 1 - shares[1])) + 1
    first_valid = min(max(first_valid, 1), n - 2)
    first_test = min(max(first_test, first_valid + 1), n - 1)
    return counts.index[first_valid].start_time.date(), counts.index[first_test].start_time.date()


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a frame (values and column names), to say which data a model saw."""
    digest = hashlib.sha256(",".join(frame.columns).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Part:
    """One part of the split, restricted to rows that pass the contract."""

    frame: pd.DataFrame
    parsed: Parsed
    y: np.ndarray
    features: Features

    @property
    def amount(self) -> np.ndarray:
        return self.parsed.numbers["loan_amnt"]

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Prepared:
    spec: FeatureSpec
    train: Part
    valid: Part
    test: Part
    age_years: np.ndarray  # of each training loan at the start of validation, for recency weights
    dropped: dict[str, int]

    def parts(self) -> dict[str, Part]:
        return {"train": self.train, "valid": self.valid, "test": self.test}


def _valid_rows(name: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, Parsed, int]:
    parsed = parse(frame)
    bad = int((~parsed.valid).sum())
    if bad:
        first = next(e for e in parsed.errors if e)
        log.warning("%s: dropped %d rows that break the contract, e.g. %s", name, bad, first)
        frame = frame[parsed.valid].reset_index(drop=True)
        parsed = parse(frame)
    return frame, parsed, bad


def prepare(split: Split, seed: int = 0, smoothing: float = 50.0) -> Prepared:
    """Fit the feature spec on the training part and build every part's features."""
    checked = {name: _valid_rows(name, frame) for name, frame in split.parts().items()}
    train_frame, train_parsed, _ = checked["train"]
    y_train = train_frame["default"].to_numpy(dtype=np.int64)
    spec = fit_spec(train_parsed, y_train, smoothing)
    rates = out_of_fold(train_parsed, y_train, spec, seed=seed)
    parts = {}
    for name, (frame, parsed, _) in checked.items():
        y = frame["default"].to_numpy(dtype=np.int64)
        parts[name] = Part(frame, parsed, y, build(parsed, spec, rates if name == "train" else None))
    issued = pd.to_datetime(train_frame["issue_d"])
    age = ((pd.Timestamp(split.valid_start) - issued).dt.days / 365.25).to_numpy(dtype=np.float64)
    return Prepared(
        spec, parts["train"], parts["valid"], parts["test"], age, {k: v[2] for k, v in checked.items()}
    )
