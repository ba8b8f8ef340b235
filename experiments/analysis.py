"""Load run directories into pandas and summarise them: curves across seeds, result tables.

    runs = load_runs(["runs/metra_point_a", "runs/lsd_point_b"])  # one row per eval and seed
    curves = learning_curves(runs, "eval/coverage")                # mean and 95% CI per step
    table = final_table(runs, ["eval/coverage", "eval/goal_success"])
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def load_run(run_dir) -> pd.DataFrame:
    """metrics.jsonl of one run, with its algorithm, world and directory as columns."""
    run_dir = Path(run_dir)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    frame = pd.DataFrame(rows)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    frame["algo"] = config["algo"]["name"]
    frame["world"] = config["world"]["name"]
    frame["run"] = run_dir.name
    return frame


def load_runs(run_dirs) -> pd.DataFrame:
    """Every run's metrics in one frame (a directory without metrics.jsonl is an error)."""
    run_dirs = [Path(d) for d in run_dirs]
    missing = [str(d) for d in run_dirs if not (d / "metrics.jsonl").is_file()]
    if missing:
        raise FileNotFoundError(f"not run directories (no metrics.jsonl): {', '.join(missing)}")
    return pd.concat([load_run(d) for d in run_dirs], ignore_index=True)


def learning_curves(runs: pd.DataFrame, metric: str, by=("algo", "world")) -> pd.DataFrame:
    """Mean of ``metric`` over seeds at each step with a 95% normal-approximation confidence band."""
    grouped = runs.groupby(list(by) + ["step"])[metric]
    out = grouped.agg(["mean", "std", "count"]).reset_index()
    half = 1.96 * out["std"].fillna(0.0) / np.sqrt(out["count"])
    out["low"], out["high"] = out["mean"] - half, out["mean"] + half
    return out


def final_table(runs: pd.DataFrame, metrics, by=("algo", "world")) -> pd.DataFrame:
    """Each run's last evaluation, averaged over seeds: mean ± std per metric."""
    last = runs[runs["step"] == runs.groupby("run")["step"].transform("max")]
    present = [m for m in metrics if m in last.columns]
    return last.groupby(list(by))[present].agg(["mean", "std"])


def plot_curves(runs: pd.DataFrame, metric: str, ax=None, by=("algo", "world")):
    """Learning curves with confidence bands; the random-action baseline dashed if logged."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    for metric_name, style in ((metric, "-"), (f"{metric}_random", "--")):
        if metric_name not in runs.columns:
            continue
        for key, curve in learning_curves(runs, metric_name, by).groupby(list(by)):
            label = " / ".join(map(str, key)) + (" (random actions)" if style == "--" else "")
            ax.plot(curve["step"], curve["mean"], style, label=label)
            ax.fill_between(curve["step"], curve["low"], curve["high"], alpha=0.2)
    ax.set_xlabel("env steps per seed")
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    return ax
