"""Training time on this machine's CPU, phase by phase, for the quick preset and the `make train` defaults.

    uv run python -m bench.training                 # quick preset + defaults on the Lending Club data
    uv run python -m bench.training --skip-full     # quick preset only

Runs go to a throw-away MLflow store (see bench.model_quality). Says which device trained the
network; when torch sees no CUDA GPU it says so (no GPU is lent to this project's CI machines).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from bench.model_quality import scratch_mlflow
from core.logging import configure
from core.settings import PathSettings
from models.registry.tracking import quiet_mlflow
from models.training.data import TrainingSource
from models.training.train import TrainOptions, TrainResult, train

PHASES = ("data", "baselines", "network", "report", "total")


def line(name: str, result: TrainResult) -> str:
    s = result.seconds
    cells = " ".join(f"{s.get(p, 0.0):>9.1f}" for p in PHASES)
    return f"{name:<34} {result.rows['train']:>7,} {cells}   {result.device}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--path", type=Path, default=PathSettings().lending_club)
    parser.add_argument("--skip-full", action="store_true", help="time the quick preset only")
    args = parser.parse_args(argv)
    configure("WARNING")
    quiet_mlflow()
    logging.getLogger("models").setLevel(logging.WARNING)
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)} (the network trains there with --device auto)")
    else:
        print("GPU: none visible to torch; no GPU is lent to this task, so every figure below is CPU time")
    print(f"{'run':<34} {'train':>7} " + " ".join(f"{p + ' s':>9}" for p in PHASES) + "   device")
    runs = [
        ("quick preset, synthetic 4,000", TrainingSource.synthetic(rows=4_000, seed=1), TrainOptions.quick())
    ]
    if not args.skip_full:
        if args.path.exists():
            runs.append(("defaults, Lending Club", TrainingSource.lending_club(args.path), TrainOptions()))
        else:
            print(f"(no Lending Club data at {args.path}: the full run is skipped)")
    with scratch_mlflow(None, "bench-training") as settings:
        for name, source, options in runs:
            print(line(name, train(settings, source, options)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
