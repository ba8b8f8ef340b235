"""The checkpoint format version: written in every checkpoint, and a run of another format refused
by resume, evaluate and finetune with one line before anything is compiled."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from experiments import evaluate, finetune, train
from experiments.checkpoint import CHECKPOINT_FORMAT, Checkpoints
from experiments.config import compose, save
from tests.test_train import COMPILES, TINY


@pytest.fixture
def saved_run(tmp_path):
    """A run directory with a config and one checkpoint (epoch 2) of a small stand-in state: the
    format is checked before the state is looked at."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save(compose(TINY + [f"run_dir={run_dir}"]), run_dir)
    Checkpoints(run_dir).save(2, {"x": jnp.arange(3.0)}, {"epoch": 2, "env_steps_per_seed": 80})
    return run_dir


def _rewrite_meta(run_dir, change) -> None:
    """Edit the JSON meta of every checkpoint in place, as an older (or newer) version wrote it."""
    for path in (run_dir / "checkpoints").glob("*/meta/metadata"):
        meta = json.loads(path.read_text())
        change(meta)
        path.write_text(json.dumps(meta))


def test_every_checkpoint_records_the_format(saved_run):
    abstract = jax.eval_shape(lambda: {"x": jnp.arange(3.0)})
    step, state, meta = Checkpoints(saved_run).restore(abstract)
    assert step == 2 and meta == {"epoch": 2, "env_steps_per_seed": 80, "format": CHECKPOINT_FORMAT}
    Checkpoints(saved_run).check_format()  # its own format passes


@pytest.mark.parametrize(
    "change, found",
    [(lambda meta: meta.pop("format"), 1), (lambda meta: meta.update(format=CHECKPOINT_FORMAT + 1), CHECKPOINT_FORMAT + 1)],
    ids=["written before the version existed", "a newer version"],
)
@pytest.mark.parametrize("cli", ["resume", "evaluate", "finetune"])
def test_another_format_is_a_one_line_error_before_any_compile(saved_run, tmp_path, capsys, change, found, cli):
    _rewrite_meta(saved_run, change)
    before = COMPILES.count
    if cli == "resume":
        code = train.main([f"resume={saved_run}", "total_steps=160"])
    elif cli == "evaluate":
        code = evaluate.main([f"run_dir={saved_run}"])
    else:
        code = finetune.main([f"pretrained={saved_run}", "task=reach_top_right", f"run_dir={tmp_path / 'finetuned'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err, err
    assert str(saved_run) in err
    assert f"format version {found}; this code reads version {CHECKPOINT_FORMAT}" in err
    assert COMPILES.count == before, "the format must be checked before anything is compiled"


def test_another_format_from_a_shell_is_one_line(saved_run):
    _rewrite_meta(saved_run, lambda meta: meta.pop("format"))
    out = subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", f"run_dir={saved_run}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "format version 1" in out.stderr, out.stderr
