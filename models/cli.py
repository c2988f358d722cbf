"""`loans-train` (`make train`), `loans-promote` (`make promote`), `loans-retrain` (`make retrain`).

    loans-train                     # Lending Club data if LOANS_PATHS_LENDING_CLUB exists, else synthetic
    loans-train --source lending-club --trials 20 --minutes 10
    loans-train --source lake       # the Spark job's Parquet lake (history + live outcomes)
    loans-train --quick             # seconds: synthetic 4,000 rows, 2 members, no search
    loans-promote [--force]         # champion <- candidate if it beats it on the same validation data
    loans-retrain [--every 6h]      # train on the lake (history + live outcomes), then the promotion gate

Exit status: 0 done (promote: promoted); 1 promotion refused; 2 a problem, said in one line.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import date
from pathlib import Path

from core.cli import run_main
from core.errors import ConfigError
from core.logging import configure
from core.settings import LogSettings, MlflowSettings, PathSettings, SparkJobSettings, load
from models.metrics import OBJECTIVES
from models.registry.tracking import quiet_mlflow
from models.registry.versions import promote
from models.training.data import TrainingSource
from models.training.fit import DEVICES
from models.training.train import TrainOptions, TrainResult, train

log = logging.getLogger(__name__)
SOURCES = ("auto", "lending-club", "lake", "synthetic")


def _month(text: str) -> date:
    try:
        year, month = text.split("-")[:2]
        return date(int(year), int(month), 1)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month like 2011-01") from exc


def _train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loans-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--source", choices=SOURCES, default="auto", help="where the training loans come from (default: auto)"
    )
    parser.add_argument(
        "--path", type=Path, help="Lending Club CSV file/folder, or the lake's history folder"
    )
    parser.add_argument(
        "--rows", type=int, help="use at most this many loans (synthetic: how many to make; default 20000)"
    )
    parser.add_argument(
        "--device", choices=DEVICES, default="auto", help="where the network trains (auto: CUDA if visible)"
    )
    parser.add_argument(
        "--trials", type=int, default=8, help="Optuna trials per searched model (0: no search)"
    )
    parser.add_argument(
        "--minutes", type=float, default=3.0, help="search budget in minutes, all models together"
    )
    parser.add_argument(
        "--objective", choices=OBJECTIVES, default="expected_loss", help="what the threshold optimises"
    )
    parser.add_argument(
        "--valid-from", type=_month, help="first month of validation (e.g. 2011-01); with --test-from"
    )
    parser.add_argument("--test-from", type=_month, help="first month of test (e.g. 2011-05)")
    parser.add_argument(
        "--quick", action="store_true", help="a few epochs, 2 members, no search (demo and tests)"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser


def source_from(args: argparse.Namespace) -> TrainingSource:
    """The training source the flags describe; `auto` picks Lending Club data when it is there."""
    kind = args.source
    if args.quick and kind == "auto":
        kind = "synthetic"
    lending_club = args.path or load(PathSettings).lending_club
    if kind == "auto":
        kind = "lending-club" if lending_club.exists() else "synthetic"
        log.info("--source auto: %s", kind if kind == "synthetic" else f"lending-club at {lending_club}")
    if args.rows is not None and args.rows < 100:
        raise ConfigError(
            f"--rows {args.rows} is too few to split into train, validation and test; give 100 or more"
        )
    if kind == "lending-club":
        return TrainingSource.lending_club(lending_club, args.rows, args.seed)
    if kind == "lake":
        return TrainingSource.lake(args.path or lake_dir(), args.rows, args.seed)
    return TrainingSource.synthetic(args.rows or (4_000 if args.quick else 20_000), args.seed)


def lake_dir() -> Path:
    """The Spark job's lake (LOANS_SPARK_LAKE_DIR) as a local path."""
    return Path(str(load(SparkJobSettings).lake_dir).removeprefix("file://"))


def options_from(args: argparse.Namespace) -> TrainOptions:
    if (args.valid_from is None) != (args.test_from is None):
        raise ConfigError(
            "give both --valid-from and --test-from (e.g. --valid-from 2011-01 --test-from 2011-05) "
            "or neither"
        )
    if args.trials < 0 or args.minutes <= 0:
        raise ConfigError(f"--trials must be >= 0 and --minutes > 0; got {args.trials} and {args.minutes}")
    split = (args.valid_from, args.test_from) if args.valid_from else None
    common = {"device": args.device, "seed": args.seed, "objective": args.objective, "split": split}
    if args.quick:
        return TrainOptions.quick(**common)
    return TrainOptions(trials=args.trials, minutes=args.minutes, **common)


def summary(result: TrainResult) -> str:
    """The table printed at the end: the network and the baselines, validation and test."""
    lines = [
        f"{'model':<10} {'valid AUC':>9} {'test AUC':>9} {'PR-AUC':>7} {'KS':>6} {'Brier':>7} {'fit s':>6}"
    ]
    rows = {"network": result.metrics, **result.baselines}
    for name, m in rows.items():
        lines.append(
            f"{name:<10} {m['valid_auc']:>9.4f} {m['test_auc']:>9.4f} {m['test_pr_auc']:>7.4f} "
            f"{m['test_ks']:>6.3f} {m['test_brier']:>7.4f} {m['train_seconds']:>6.1f}"
        )
    t = result.thresholds
    lines.append(
        f"threshold ({t.objective}, tuned on validation): decline >= {t.decline:.3f}, "
        f"review >= {t.review:.3f}; "
        f"test precision {result.metrics['test_precision']:.3f}, recall {result.metrics['test_recall']:.3f}"
    )
    lines.append(
        f"registered {result.model_name} version {result.version} as candidate (run {result.run_id}); "
        f"device {result.device}"
    )
    return "\n".join(lines)


def train_main(argv: list[str] | None = None) -> int:
    args = _train_parser().parse_args(argv)

    def body() -> int:
        configure(load(LogSettings).level)
        quiet_mlflow()
        result = train(load(MlflowSettings, service="trainer"), source_from(args), options_from(args))
        print(summary(result))
        return 0

    return run_main(body)


def promote_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="loans-promote", description="Move `champion` to `candidate` if it is better."
    )
    parser.add_argument("--force", action="store_true", help="promote even if the candidate is not better")
    args = parser.parse_args(argv)

    def body() -> int:
        configure(load(LogSettings).level)
        quiet_mlflow()
        result = promote(load(MlflowSettings, service="trainer"), force=args.force)
        print(("promoted: " if result.promoted else "not promoted: ") + result.reason)
        return 0 if result.promoted or result.champion == result.candidate else 1

    return run_main(body)


def _every(text: str) -> float:
    """`--every 6h` / `30m` / `90s` in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        seconds = float(text[:-1]) * units[text[-1]]
    except (KeyError, ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a period like 90s, 30m, 6h or 1d") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"--every must be positive, got {text!r}")
    return seconds


def _retrain_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loans-retrain",
        description="Train a candidate on the lake the Spark job writes (archived history plus live "
        "applications labelled by their outcome), register it as `candidate`, and promote it to "
        "`champion` only if it beats the champion on the same validation data. Exit status: 0 "
        "promoted (or looping with --every), 1 the champion stays, 2 a problem.",
    )
    parser.add_argument("--path", type=Path, help="the lake (default: LOANS_SPARK_LAKE_DIR)")
    parser.add_argument("--every", type=_every, help="retrain on this period, e.g. 6h (default: once)")
    parser.add_argument("--rows", type=int, help="use at most this many loans")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--trials", type=int, default=0, help="Optuna trials per searched model")
    parser.add_argument("--minutes", type=float, default=3.0, help="search budget in minutes")
    parser.add_argument("--quick", action="store_true", help="a few epochs, 2 members (demo and tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(objective="expected_loss", valid_from=None, test_from=None, source="lake")
    return parser


def retrain_main(argv: list[str] | None = None) -> int:
    args = _retrain_parser().parse_args(argv)

    def body() -> int:
        configure(load(LogSettings).level)
        quiet_mlflow()
        settings = load(MlflowSettings, service="trainer")
        source, options = source_from(args), options_from(args)

        def cycle() -> bool:
            started = time.monotonic()
            print(f"retraining on {source.describe()}", flush=True)
            print(summary(train(settings, source, options)), flush=True)
            outcome = promote(settings)
            verdict = "promoted: " if outcome.promoted else "not promoted, the champion stays: "
            print(verdict + outcome.reason, flush=True)
            print(f"retraining took {time.monotonic() - started:.1f} s", flush=True)
            return outcome.promoted

        if args.every is None:
            return 0 if cycle() else 1
        while True:  # on a schedule, a failed cycle (MLflow away, too little data yet) is not the last
            try:
                cycle()
            except Exception as exc:
                log.error("retraining failed: %s; trying again in %.0f s", exc, args.every)
            log.info("next retraining in %.0f s", args.every)
            time.sleep(args.every)

    return run_main(body)


if __name__ == "__main__":
    sys.exit(train_main())
