"""Model quality on the real Lending Club data: the PyTorch ensemble against the baselines, same run.

Split (DESIGN.md): train issued <= 2010, validation 2011-01..04, test 2011-05..08 of
../shared/data/lending-club. Validation serves early stopping, the searches and the threshold only;
test is scored once. Targets: the network's test AUC >= 0.71 and >= the best baseline's. Each test
AUC comes with its 95 % bootstrap interval, and the network's margin over each baseline with the
interval of the difference on the same resampled test rows (is the margin more than noise?).

    uv run python -m bench.model_quality                  # the `make train` defaults, a few minutes on CPU
    uv run python -m bench.model_quality --trials 20 --minutes 10

By default the run goes to a throw-away MLflow store (SQLite in a temp folder), so the benchmark never
moves the project's `candidate`; `--tracking-uri http://127.0.0.1:5000` logs it for real.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import torch

from core.errors import DataError
from core.logging import configure
from core.settings import MlflowSettings, PathSettings
from models.metrics import auc, brier, ks
from models.registry.tracking import quiet_mlflow
from models.training.data import TrainingSource, load, temporal_split
from models.training.nets import NetConfig
from models.training.train import TrainOptions, TrainResult, train

TARGET_AUC = 0.71
HEADER = (
    f"{'model':<22} {'val AUC':>8} {'test AUC':>9} {'95 % bootstrap':>16} {'PR-AUC':>7} {'KS':>6} "
    f"{'Brier':>7} {'fit s':>6} {'search s':>8}"
)


@contextmanager
def scratch_mlflow(uri: str | None, experiment: str = "bench") -> Iterator[MlflowSettings]:
    """`uri` as given, or a SQLite store with its artifacts in a temp folder (nothing left behind)."""
    if uri:
        yield MlflowSettings(tracking_uri=uri, experiment=experiment, model_name=f"{experiment}-model")
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{tmp}/mlflow.db"
        mlflow.set_tracking_uri(store)
        mlflow.create_experiment(experiment, artifact_location=Path(tmp, "artifacts").as_uri())
        yield MlflowSettings(tracking_uri=store, experiment=experiment, model_name=f"{experiment}-model")


def row(name: str, m: dict[str, float]) -> str:
    return (
        f"{name:<22} {m['valid_auc']:>8.4f} {m['test_auc']:>9.4f} {interval(m):>16} {m['test_pr_auc']:>7.4f} "
        f"{m['test_ks']:>6.3f} {m['test_brier']:>7.4f} {m['train_seconds']:>6.1f} "
        f"{m.get('search_seconds', 0.0):>8.1f}"
    )


def interval(m: dict[str, float], name: str = "test_auc") -> str:
    low, high = m.get(f"{name}_low"), m.get(f"{name}_high")
    return "" if low is None or high is None else f"[{low:.4f}, {high:.4f}]"


def sub_grade_alone(source: TrainingSource) -> dict[str, float]:
    """The single strongest field as a score (A1 < ... < G5), for scale."""
    split = temporal_split(load(source), source.default_split())
    out = {"train_seconds": 0.0}
    for part, frame in (("valid", split.valid), ("test", split.test)):
        y = frame["default"].to_numpy()
        s = frame["sub_grade"].map(lambda g: "ABCDEFG".index(g[0]) * 5 + int(g[1])).to_numpy(dtype=float)
        out |= {f"{part}_auc": auc(y, s), f"{part}_pr_auc": float("nan"), f"{part}_ks": ks(y, s)}
        out[f"{part}_brier"] = brier(y, np.full(len(y), y.mean()))  # a constant, the level a score must beat
    return out


def report(result: TrainResult, reference: dict[str, float]) -> tuple[str, bool]:
    best_name, best = max(result.baselines.items(), key=lambda kv: kv[1]["test_auc"])
    net = result.metrics["test_auc"]
    lines = [HEADER, row("pytorch ensemble", result.metrics)]
    lines += [row(f"baseline {name}", m) for name, m in result.baselines.items()]
    lines.append(row("sub_grade alone", reference) + "   (Brier: constant base rate)")
    t = result.thresholds
    lines.append(
        f"threshold ({t.objective}, validation): decline >= {t.decline:.3f}, review >= {t.review:.3f}; test "
        f"precision {result.metrics['test_precision']:.3f}, recall {result.metrics['test_recall']:.3f}, "
        f"ECE {result.metrics['test_ece']:.4f}"
    )
    for name, m in result.baselines.items():
        margin = net - m["test_auc"]
        lines.append(
            f"network - {name}: {margin:+.4f}, 95 % bootstrap (paired, same test rows) "
            f"{interval(result.metrics, f'test_auc_margin_{name}')}"
        )
    ok = net >= TARGET_AUC and net >= best["test_auc"]
    lines.append(
        f"target: test AUC >= {TARGET_AUC} and >= best baseline ({best_name} {best['test_auc']:.4f}): "
        f"{'MET' if ok else 'NOT MET'} (network {net:.4f})"
    )
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--path", type=Path, default=PathSettings().lending_club)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--members", type=int, default=NetConfig().members)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--tracking-uri", help="log to this MLflow server instead of a temp store")
    args = parser.parse_args(argv)
    configure("WARNING")
    quiet_mlflow()
    logging.getLogger("models").setLevel(logging.INFO)
    if not args.path.exists():
        print(f"error: no Lending Club data at {args.path}; pass --path", file=sys.stderr)
        return 2
    source = TrainingSource.lending_club(args.path)
    options = TrainOptions(
        trials=args.trials,
        minutes=args.minutes,
        seed=args.seed,
        device=args.device,
        net=NetConfig(members=args.members),
    )
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none visible"
    print(f"data: {args.path} | search: {args.trials} trials / {args.minutes} min | GPU: {gpu}")
    try:
        with scratch_mlflow(args.tracking_uri) as settings:
            result = train(settings, source, options)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table, ok = report(result, sub_grade_alone(source))
    print(f"\nrows: {result.rows}; network trained on {result.device}; total {result.seconds['total']:.0f} s")
    print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
