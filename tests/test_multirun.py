"""Hydra multirun over structural choices: the basic launcher, Ray on a local loopback instance,
and the SLURM (submitit) launcher config, composed but never submitted."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from experiments import train
from experiments.config import CONFIG_DIR
from tests.test_train import TINY, rows

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["-m", "algo=metra,lsd", *TINY, "total_steps=80"]


def check_runs(sweep_dir: Path) -> None:
    """Two runs, each in its own directory, with the config and metrics of its algo."""
    runs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert [p.name for p in runs] == ["0_metra_point", "1_lsd_point"]
    for run_dir, algo in zip(runs, ["metra", "lsd"]):
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert cfg["algo"]["name"] == algo
        assert cfg["network"]["hidden"] == [32, 32]
        assert cfg["run_dir"] == str(run_dir.resolve())
        assert [r["step"] for r in rows(run_dir)] == [80]


@pytest.mark.slow
def test_basic_launcher_runs_each_combination_in_its_own_run_dir(tmp_path):
    assert train.main([*SWEEP, f"hydra.sweep.dir={tmp_path}"]) == 0
    check_runs(tmp_path)


def test_a_bad_job_in_a_multirun_is_one_error_line_and_a_nonzero_exit(tmp_path, capsys):
    # A handler that existed before the multirun (a notebook's, absl's): Hydra must leave it alone.
    stream, logger = io.StringIO(), logging.getLogger("skillax.test_multirun")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        code = train.main(["-m", "algo=metra,lsd", "total_steps=1001", f"hydra.sweep.dir={tmp_path}"])
        logger.warning("still here")
    finally:
        logger.removeHandler(handler)
    assert not stream.closed and stream.getvalue() == "still here\n" and not logger.disabled
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    # Hydra names the failed job, then the job's own one-line message; no traceback.
    assert err[0].startswith("Error executing job with overrides: ['algo=metra', 'total_steps=1001'")
    assert err[1].startswith("error: total_steps (1001) must be a multiple") and len(err) == 2, err


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["algo=metra,nothing"], "Could not find 'algo/nothing'"),
        (["no_such_key=1,2"], "Could not override 'no_such_key'"),
    ],
)
def test_a_bad_sweep_is_one_error_line(args, fragment, tmp_path, capsys):
    code = train.main(["-m", *args, f"hydra.sweep.dir={tmp_path}"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err and fragment in err, err


@pytest.mark.slow
def test_ray_launcher_runs_two_jobs_on_a_local_loopback_ray_instance(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")
    # No opt-in to the wider binding: the multirun keeps every Ray service on 127.0.0.1 (see ray.yaml).
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    args = [*SWEEP, "hydra/launcher=ray", f"hydra.sweep.dir={tmp_path}"]
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.train", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert out.count("_run_job pid=") >= 2, out  # printed by the Ray workers, not the driver
    assert "validated against ConfigStore schema" not in out
    check_runs(tmp_path)


def compose_with_hydra(overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def test_slurm_launcher_config_composes_to_submitit_without_submitting():
    from hydra.utils import instantiate

    launcher = compose_with_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"]).hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.tasks_per_node) == ("gpu", 1, 1)
    assert launcher.timeout_min > 0 and launcher.cpus_per_task > 0 and launcher.mem_gb > 0
    assert launcher.submitit_folder.endswith("/.submitit/%j")
    slurm = instantiate(launcher)  # constructing the launcher submits nothing
    assert type(slurm).__name__ == "SlurmLauncher" and slurm.params["gpus_per_node"] == 1


@pytest.mark.filterwarnings(r"ignore:\s*'hydra/launcher/ray' is validated against ConfigStore schema")
def test_ray_launcher_config_composes_to_a_local_instance_without_dashboard():
    launcher = compose_with_hydra(["hydra/launcher=ray"]).hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    assert launcher.ray.init.address == "local" and launcher.ray.init.include_dashboard is False
    assert launcher.ray.remote.num_cpus == 1
