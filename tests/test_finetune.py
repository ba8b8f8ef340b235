"""URLB-style finetuning: skill selection, pretrained initialisation, task reward, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from experiments import finetune, train
from experiments.runs import load_trainer
from tests.test_train import TINY, rows


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pretrained")
    train.run(train.resolve_config(TINY + [f"run_dir={run_dir}", "total_steps=160"]))
    return run_dir


def test_finetune_picks_the_best_skill_and_starts_from_the_pretrained_learner(pretrained, tmp_path, monkeypatch):
    captured = {}
    original = train.run

    def keep_initial_state(cfg, initial_state=None):
        captured["state"] = jax.tree.map(np.asarray, initial_state)  # the run donates its state
        return original(cfg, initial_state)

    monkeypatch.setattr(train, "run", keep_initial_state)
    run_dir = tmp_path / "ft"
    args = [f"pretrained={pretrained}", "task=reach_top_right", "total_steps=80", f"run_dir={run_dir}", "candidates=8", "progress=false"]
    assert finetune.main(args) == 0

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    returns = cfg["finetune"]["skill_returns"]
    assert len(returns) == 8 and cfg["finetune"]["task"] == "reach_top_right"
    assert cfg["algo"]["objective"]["name"] == "task" and cfg["world"]["options"]["task"] == "reach_top_right"
    # The chosen skill is the candidate with the highest return: replay the selection by hand.
    trainer_p, state_p, _, _ = load_trainer(pretrained)
    candidates = trainer_p.objective.sample(jax.random.PRNGKey(cfg["seed"]), 8)
    np.testing.assert_allclose(cfg["algo"]["objective"]["skill"], np.asarray(candidates[int(np.argmax(returns))]), rtol=1e-6)
    # The finetune run starts from the pretrained actor and critic, with fresh optimisers.
    start = captured["state"].learner
    for fresh, old in zip(jax.tree.leaves((start.actor, start.critic)), jax.tree.leaves((state_p.learner.actor, state_p.learner.critic))):
        np.testing.assert_array_equal(np.asarray(fresh[0]), np.asarray(old[0]))
    assert int(start.actor_opt.count[0]) == 0
    last = rows(run_dir)[-1]
    assert last["eval/return"] < 0 and "eval/return_random" in last  # the corner task's dense reward is on

    # The finetune run resumes like any run.
    resumed = train.run(train.resolve_config([f"resume={run_dir}", "total_steps=160"]))
    assert int(resumed.state.epoch[0]) == 4


def test_transplant_keeps_fresh_leaves_where_shapes_differ():
    fresh = {"trunk": jnp.zeros((3, 4)), "head": jnp.zeros((4, 2))}
    old = {"trunk": jnp.ones((3, 4)), "head": jnp.ones((4, 1))}
    out = finetune.transplant(fresh, old)
    assert float(out["trunk"].sum()) == 12 and float(out["head"].sum()) == 0


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["world=brax/ant"], "is world point, not brax/ant"),
        (["algo=lsd"], "is algo metra, not lsd"),
        (["task=fly"], "unknown task 'fly'"),
        (["bogus=1"], "unknown option(s) bogus=1"),
    ],
)
def test_bad_finetune_input_is_a_one_line_error(pretrained, extra, fragment, capsys, tmp_path):
    args = [f"pretrained={pretrained}", "task=reach_top_left", f"run_dir={tmp_path}"]
    args = [a for a in args if not (a.startswith("task=") and any(e.startswith("task=") for e in extra))] + extra
    assert finetune.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err


def test_a_learner_with_nothing_transferable_is_refused_before_any_compile(tmp_path, capsys):
    """CRL learns from goals, not rewards (``CRL.transferable`` is empty): finetuning a CRL run on a
    task reward is a one-line error, decided from the run's config alone."""
    from experiments.config import compose, save

    run_dir = tmp_path / "crl_run"
    run_dir.mkdir()
    save(compose(["algo=crl", *TINY]), run_dir)
    assert finetune.main([f"pretrained={run_dir}", "task=reach_top_left", f"run_dir={tmp_path / 'ft'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot be finetuned" in err and "\n" not in err
    assert not (tmp_path / "ft").exists()


def test_missing_pretrained_directory(capsys):
    assert finetune.main(["pretrained=/no/such/run", "task=reach_top_left"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_dmc_walker_pretrain_then_finetune(tmp_path):
    """URLB on DMC end to end (and the walker family's short run): reward-free METRA pretraining
    on dmc/walker_walk, then finetuning on walker's run task from the pretrained run."""
    pretrained = tmp_path / "pretrained"
    physics = ["world=dmc/walker_walk", "world.options.episode_length=20", "loop.prefill_steps=40"]
    assert train.main(TINY + physics + [f"run_dir={pretrained}", "total_steps=160"]) == 0
    for r in rows(pretrained):
        assert np.isfinite(r["loss/critic"]) and np.isfinite(r["loss/phi"]) and r["eval/coverage"] >= 1
    assert (pretrained / "checkpoints" / "4").is_dir()

    run_dir = tmp_path / "ft"
    args = [f"pretrained={pretrained}", "task=run", "total_steps=80", f"run_dir={run_dir}", "candidates=4", "progress=false"]
    assert finetune.main(args) == 0
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["world"]["name"] == "dmc/walker_run" and cfg["algo"]["objective"]["name"] == "task"
    returns = cfg["finetune"]["skill_returns"]
    assert len(returns) == 4 and all(0.0 <= r <= 20.0 for r in returns)  # DMC rewards are in [0, 1] per step
    last = rows(run_dir)[-1]
    assert 0.0 <= last["eval/return"] <= 20.0 and 0.0 <= last["eval/return_random"] <= 20.0
