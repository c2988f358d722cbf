"""CLI flags: the training source and options they describe, and one-line errors for bad ones."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import pytest
import torch

from core.errors import ConfigError
from models.cli import _train_parser, options_from, source_from
from models.training.fit import resolve_device


def _args(*flags: str) -> argparse.Namespace:
    return _train_parser().parse_args(list(flags))


def test_auto_source_uses_lending_club_data_when_it_exists_else_synthetic(tmp_path: Path) -> None:
    (tmp_path / "loans.csv").write_text("id\n")
    assert source_from(_args("--path", str(tmp_path))).kind == "lending-club"
    assert source_from(_args("--path", str(tmp_path / "missing"))).kind == "synthetic"
    quick = source_from(_args("--quick"))
    assert quick.kind == "synthetic" and quick.rows == 4_000


def test_explicit_sources_carry_path_rows_and_seed(tmp_path: Path) -> None:
    lake = source_from(_args("--source", "lake", "--path", str(tmp_path), "--rows", "500", "--seed", "3"))
    assert (lake.kind, lake.path, lake.rows, lake.seed) == ("lake", tmp_path, 500, 3)
    assert source_from(_args("--source", "synthetic", "--rows", "1000")).rows == 1_000


def test_split_months_and_budget_reach_the_options() -> None:
    options = options_from(
        _args("--valid-from", "2011-01", "--test-from", "2011-05", "--trials", "3", "--minutes", "2")
    )
    assert options.split == (date(2011, 1, 1), date(2011, 5, 1))
    assert (options.trials, options.minutes) == (3, 2.0)
    quick = options_from(_args("--quick", "--trials", "9"))
    assert quick.trials == 0 and quick.net.members == 2  # the preset wins: no search


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--valid-from", "2011-01"), "give both --valid-from and --test-from"),
        (("--trials", "-1"), "--trials must be >= 0"),
    ],
)
def test_bad_flag_combinations_are_config_errors(flags: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        options_from(_args(*flags))


def test_too_few_rows_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--rows 10 is too few"):
        source_from(_args("--source", "synthetic", "--rows", "10"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU")
def test_cuda_without_a_gpu_says_what_to_use_instead() -> None:
    with pytest.raises(ConfigError, match="use --device auto or --device cpu"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_a_bad_month_is_refused_by_argparse() -> None:
    with pytest.raises(SystemExit):
        _args("--valid-from", "January")
