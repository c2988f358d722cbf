"""The scorer: a row out per row in, clear per-row errors for bad input, never an exception for a batch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.features.inputs import FIELDS
from models.scoring.scorer import MODEL_FILE, STATE_FILE, Scorer, digest
from models.training.data import Prepared


@pytest.fixture(scope="module")
def trained(trained_model: Callable[..., tuple[Scorer, Prepared]]) -> tuple[Scorer, Prepared]:
    return trained_model(21)


@pytest.fixture
def scorer(trained: tuple[Scorer, Prepared]) -> Scorer:
    return trained[0]


@pytest.fixture
def rows(trained: tuple[Scorer, Prepared]) -> pd.DataFrame:
    return trained[1].test.frame.head(6).reset_index(drop=True)


def test_output_has_one_row_per_input_in_order_with_the_input_index(
    scorer: Scorer, rows: pd.DataFrame
) -> None:
    frame = rows.set_axis([f"app-{i}" for i in range(len(rows))])
    out = scorer.score(frame)
    assert list(out.columns) == ["probability", "decision", "error"]
    assert list(out.index) == list(frame.index)
    assert out["error"].isna().all()
    assert out["probability"].between(0, 1).all()
    single = pd.concat([scorer.score(frame.iloc[[i]]) for i in range(len(frame))])
    pd.testing.assert_frame_equal(out, single)  # batching never changes a row's answer
    reversed_out = scorer.score(frame.iloc[::-1])
    pd.testing.assert_frame_equal(out.iloc[::-1], reversed_out)


def test_decisions_follow_the_thresholds(scorer: Scorer, trained: tuple[Scorer, Prepared]) -> None:
    out = scorer.score(trained[1].test.frame)
    p, t = out["probability"].to_numpy(), scorer.thresholds
    expected = np.where(p >= t.decline, "decline", np.where(p >= t.review, "review", "approve"))
    assert (out["decision"].to_numpy() == expected).all()
    assert set(out["decision"]) <= {"approve", "review", "decline"}


def test_bad_rows_get_a_clear_error_and_the_rest_are_scored(scorer: Scorer, rows: pd.DataFrame) -> None:
    frame = rows.astype({"loan_amnt": object, "earliest_cr_line": object})
    frame.loc[0, "purpose"] = None
    frame.loc[0, "dti"] = -3.0
    frame.loc[1, "loan_amnt"] = "lots"
    frame.loc[2, "sub_grade"] = "Z9"
    frame.loc[3, "term"] = 48
    frame.loc[4, "earliest_cr_line"] = "not a date"
    out = scorer.score(frame)
    errors, p = out["error"].tolist(), out["probability"].to_numpy()
    assert errors[0] == "dti: -3 is below 0; purpose: missing"
    assert errors[1] == "loan_amnt: 'lots' is not a number"
    assert "sub_grade: 'Z9' does not match" in errors[2]
    assert errors[3] == "term: 48 is not 36 or 60 (months)"
    assert "earliest_cr_line: 'not a date' is not a date" in errors[4]
    assert np.isnan(p[:5]).all() and out["decision"].iloc[:5].isna().all()
    assert errors[5] is None and 0 <= p[5] <= 1
    good = scorer.score(rows.iloc[[5]])
    assert good["probability"].iloc[0] == p[5]


def test_out_of_range_values_from_the_contract_are_reported(scorer: Scorer, rows: pd.DataFrame) -> None:
    frame = rows.head(3).copy()
    frame.loc[0, "fico_range_low"] = 900
    frame.loc[1, "int_rate"] = 0.9
    frame.loc[2, "installment"] = 0.0
    errors = scorer.score(frame)["error"].tolist()
    assert errors[0] is not None and "fico_range_low: 900 is above 850" in errors[0]
    assert errors[1] == "int_rate: 0.9 is above 0.4"
    assert errors[2] == "installment: 0 must be above 0"


def test_missing_columns_and_empty_frames_do_not_raise(scorer: Scorer, rows: pd.DataFrame) -> None:
    optional_gone = rows.drop(columns=["emp_title", "revol_util", "earliest_cr_line", "annual_inc"])
    assert scorer.score(optional_gone)["error"].isna().all()
    required_gone = rows.drop(columns=["dti"])
    assert (scorer.score(required_gone)["error"] == "dti: missing").all()
    empty = scorer.score(rows.iloc[:0])
    assert len(empty) == 0 and list(empty.columns) == ["probability", "decision", "error"]
    nothing = scorer.score(pd.DataFrame({"x": [1, 2]}))
    assert nothing["probability"].isna().all() and nothing["error"].str.contains("loan_amnt: missing").all()


def test_api_shaped_records_score_like_history_rows(scorer: Scorer, rows: pd.DataFrame) -> None:
    """A record as JSON gives it (strings, None, ISO dates, event_time) scores like the typed row."""
    records = []
    for _, row in rows.iterrows():
        record = {name: (None if pd.isna(row[name]) else row[name]) for name in FIELDS}
        record["earliest_cr_line"] = pd.Timestamp(row["earliest_cr_line"]).strftime("%Y-%m-%d")
        record["event_time"] = pd.Timestamp(row["issue_d"]).strftime("%Y-%m-%dT%H:%M:%SZ")
        records.append({k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()})
    from_api = scorer.score(pd.DataFrame(records))
    np.testing.assert_allclose(from_api["probability"], scorer.score(rows)["probability"], rtol=1e-6)


def test_credit_history_is_measured_at_the_as_of_date(scorer: Scorer, rows: pd.DataFrame) -> None:
    one = rows.iloc[[0]].drop(columns=["issue_d"])
    then = scorer.score(one.assign(event_time=pd.Timestamp("2011-06-01", tz="UTC")))["probability"].iloc[0]
    much_later = scorer.score(one.assign(event_time=pd.Timestamp("2041-06-01", tz="UTC")))[
        "probability"
    ].iloc[0]
    assert then != much_later
    early = one.assign(earliest_cr_line=date(2030, 1, 1), event_time=pd.Timestamp("2011-06-01", tz="UTC"))
    assert "after the application date" in scorer.score(early)["error"].iloc[0]


def test_save_and_load_give_the_same_answers(scorer: Scorer, rows: pd.DataFrame, tmp_path: Path) -> None:
    loaded = Scorer.load(scorer.save(tmp_path / "scorer"))
    pd.testing.assert_frame_equal(scorer.score(rows), loaded.score(rows))
    assert loaded.thresholds == scorer.thresholds
    assert not list(tmp_path.glob("**/*.pkl"))


def test_numpy_columns_score_exactly_as_the_dataframe(scorer: Scorer, rows: pd.DataFrame) -> None:
    """The API's path (a mapping of numpy arrays, no pandas) gives the DataFrame path's answers, bad
    rows and their messages included."""
    from serving.frames import credit_columns, credit_frame
    from serving.schemas import Application

    apps = [Application.model_validate(dict(r)) for r in rows[list(FIELDS)].to_dict("records")]
    bad = apps[2].model_copy(update={"grade": "A", "sub_grade": "G5"})  # a cross-field error
    apps = [*apps, bad]
    probability, decision, error = scorer.outputs(credit_columns(apps))
    expected = scorer.score(credit_frame(apps))
    np.testing.assert_array_equal(probability, expected["probability"].to_numpy())
    assert list(decision) == expected["decision"].tolist()
    assert list(error) == expected["error"].tolist()
    assert error[-1] == "grade: 'A' is not the letter of sub_grade" and np.isnan(probability[-1])
    assert all(e is None for e in error[:-1])


def test_the_digest_covers_both_files_and_changes_with_either(scorer: Scorer, tmp_path: Path) -> None:
    folder = scorer.save(tmp_path / "scorer")
    first = digest(folder)
    assert first == digest(scorer.save(tmp_path / "again"))  # the same scorer, the same digest
    state = folder / STATE_FILE
    state.write_text(state.read_text().replace('"decline"', '"decline" ', 1))  # one byte more
    assert digest(folder) != first
    scorer.save(folder)
    with (folder / MODEL_FILE).open("ab") as model:
        model.write(b"\0")
    assert digest(folder) != first
    (folder / MODEL_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=MODEL_FILE):
        digest(folder)
