"""Load run directories into pandas and summarise them: curves across seeds, result tables.

    runs = load_runs(["runs/metra_point_a", "runs/lsd_point_b"])  # one row per eval and seed
    curves = learning_curves(runs, "eval/coverage")                # mean and 95% CI per step
    table = final_table(runs, ["eval/coverage", "eval/goal_success"])
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def load_run(run_dir) -> pd.DataFrame:
    """metrics.jsonl of one run, with its algorithm, world and directory as columns.

    A damaged line (e.g. cut short by a crash) is skipped with a warning. A row repeated for the
    same step and seed (a record written before trimmed resumes existed) is kept once, the last
    one, with a warning: counted twice it would pass for another seed and narrow the bands."""
    from experiments.logger import read_rows

    run_dir = Path(run_dir)
    rows, problems = read_rows(run_dir / "metrics.jsonl")
    for problem in problems:
        warnings.warn(problem, stacklevel=2)
    frame = pd.DataFrame(rows)
    key = [k for k in ("step", "seed", "member") if k in frame.columns]
    repeated = frame.duplicated(key, keep="last") if key else pd.Series(False, index=frame.index)
    if repeated.any():
        warnings.warn(f"{run_dir / 'metrics.jsonl'}: {int(repeated.sum())} repeated row(s) of the same step and seed; kept the last", stacklevel=2)
        frame = frame[~repeated].reset_index(drop=True)
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


# URLB expert scores (rll-research/url_benchmark#1): normalised score = return / expert.
URLB_EXPERT = {
    "walker_stand": 984, "walker_walk": 971, "walker_run": 796, "walker_flip": 799,
    "quadruped_walk": 866, "quadruped_run": 888, "quadruped_stand": 920, "quadruped_jump": 888,
    "jaco_reach_top_left": 191, "jaco_reach_top_right": 223, "jaco_reach_bottom_left": 193,
    "jaco_reach_bottom_right": 203,
}  # fmt: skip


def urlb_normalized(runs: pd.DataFrame, metric: str = "eval/return") -> pd.DataFrame:
    """Each run's last ``metric`` divided by URLB's expert score for its task (``dmc/<task>`` worlds)."""
    last = runs[runs["step"] == runs.groupby("run")["step"].transform("max")].copy()
    last["task"] = last["world"].str.replace("dmc/", "", regex=False)
    unknown = sorted(set(last["task"]) - set(URLB_EXPERT))
    if unknown:
        raise ValueError(f"no URLB expert score for {', '.join(unknown)}; known: {', '.join(sorted(URLB_EXPERT))}")
    last["normalized"] = last[metric] / last["task"].map(URLB_EXPERT)
    return last


def aggregate(scores: dict, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """IQM and mean with stratified-bootstrap 95% CIs (rliable), per algorithm.

    ``scores``: {algo: array [runs, tasks]} of normalised scores."""
    from rliable import library as rly
    from rliable import metrics as rm

    def stats(x):
        return np.array([rm.aggregate_iqm(x), rm.aggregate_mean(x)])

    np.random.seed(seed)  # rliable's bootstrap draws from numpy's global generator
    points, intervals = rly.get_interval_estimates(scores, stats, reps=reps)
    rows = []
    for algo, value in points.items():
        low, high = intervals[algo]
        rows.append({"algo": algo, "iqm": value[0], "iqm_low": low[0], "iqm_high": high[0],
                     "mean": value[1], "mean_low": low[1], "mean_high": high[1]})  # fmt: skip
    return pd.DataFrame(rows).set_index("algo")
