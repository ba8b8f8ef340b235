"""Evaluate a saved run without training: ``python -m experiments.evaluate run_dir=<dir> [checkpoint=N]``.

Restores the newest checkpoint (or checkpoint N, an epoch number), runs the same evaluation as
training does (coverage, object coverage, zero-shot goal reaching, each with its random-action
baseline), appends one row per seed to ``<run_dir>/eval.jsonl`` and writes
``<run_dir>/plots/skills_<step>.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from experiments.config import ConfigError
from experiments.runs import load_trainer

OPTIONS = ("run_dir", "checkpoint", "plots")


def evaluate(run_dir, checkpoint: int | None = None, plots: bool = True) -> list[dict]:
    """Evaluate a saved run's checkpoint (the newest by default); append its rows to eval.jsonl."""
    from experiments import sweep
    from experiments.eval_protocol import Evaluator, evaluation_rows, save_skill_figure
    from experiments.logger import RunLogger

    trainer, state, epoch, cfg = load_trainer(run_dir, checkpoint)
    run_dir = Path(run_dir)
    metrics, positions, skills = Evaluator(trainer, trainer.config.eval_episodes, cfg.seed)(state, epoch)
    step = epoch * trainer.config.steps_per_epoch
    members = sweep.members(cfg)
    rows = evaluation_rows(metrics, members, cfg.seed, step, epoch, checkpoint=epoch)
    logger = RunLogger(run_dir, len(members), tensorboard=False)
    logger.path = run_dir / "eval.jsonl"
    logger.log(rows)
    if plots:
        save_skill_figure(run_dir, step, positions, skills, rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        pairs = dict(item.split("=", 1) for item in argv if "=" in item)
        unknown = sorted(set(pairs) - set(OPTIONS)) + [item for item in argv if "=" not in item]
        if unknown:
            raise ConfigError(f"unknown option(s) {', '.join(unknown)}; options: {', '.join(OPTIONS)}")
        if "run_dir" not in pairs:
            raise ConfigError("run_dir=<directory of a training run> is required")
        checkpoint = pairs.get("checkpoint")
        if checkpoint is not None and not checkpoint.isdigit():
            raise ConfigError(f"checkpoint must be an epoch number, got {checkpoint!r}")
        rows = evaluate(pairs["run_dir"], int(checkpoint) if checkpoint else None, pairs.get("plots", "true") != "false")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for row in rows:
        print({k: v for k, v in row.items() if k.startswith(("step", "seed", "eval/"))})
    return 0


if __name__ == "__main__":
    sys.exit(main())
