"""URLB-style finetuning of a pretrained skill policy on a task reward.

    python -m experiments.finetune pretrained=<run_dir> task=reach_top_right [total_steps=...]

1. Restore the pretrained run (newest checkpoint; ``pretrained_seed`` picks which of its seeds).
2. Choose the skill the way the reference methods do for skill-conditioned policies: a grid over
   skills — every one-hot skill for discrete priors, ``candidates`` prior samples for continuous
   ones — scored by the task return of one deterministic episode each; keep the best.
3. Train on the task reward (``skills/task.py``: fixed skill, the world's reward) with the actor
   and critic initialised from the pretrained learner (trunk layers whose shapes match; a critic
   head of another width starts fresh), fresh optimiser states, the loop and checkpoints of
   ``experiments.train``. The finetune run's config.yaml records the pretrained run and the skill;
   ``python -m experiments.train resume=<finetune run_dir>`` continues it.

Tasks: ``point`` worlds take reach-a-corner tasks (worlds/point.py TASKS); a ``dmc/<domain>_<t>``
run finetunes on ``dmc/<domain>_<task>`` (URLB: pretrain on one task's world, reward-free).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

from omegaconf import OmegaConf

from experiments import train
from experiments.config import ConfigError, load

OPTIONS = ("pretrained", "task", "total_steps", "run_dir", "seed", "num_seeds", "pretrained_seed", "candidates", "eval_every", "algo", "world", "progress")


def task_world(cfg, task: str):
    """The pretrained run's world config with the task's reward switched on."""
    world = copy.deepcopy(cfg.world)
    name = world.name
    if name.startswith("dmc/"):
        domain = name[len("dmc/") :].rsplit("_", 1)[0]
        world.name = f"dmc/{domain}_{task}"
        world.slug = f"dmc-{domain}_{task}"
        return world
    if name in ("point", "point_block"):
        from worlds.point import TASKS

        if task not in TASKS or task == "none":
            raise ConfigError(f"unknown task {task!r} for {name}; known: {', '.join(t for t in TASKS if t != 'none')}")
        world.options.task = task
        return world
    raise ConfigError(f"world {name} has no downstream tasks to finetune on")


def transplant(fresh, pretrained):
    """Pretrained leaves wherever the shapes agree, fresh ones elsewhere (e.g. a new critic head)."""
    import jax

    return jax.tree.map(lambda new, old: old if old.shape == new.shape else new, fresh, pretrained)


def finetune_config(pretrained_cfg, args: dict):
    cfg = copy.deepcopy(pretrained_cfg)
    OmegaConf.set_struct(cfg, False)
    cfg.world = task_world(pretrained_cfg, args["task"])
    cfg.algo.name = f"{pretrained_cfg.algo.name}-finetune"
    cfg.resume = None
    cfg.sweep = None
    cfg.total_steps = int(args.get("total_steps", 100_000))
    cfg.seed = int(args.get("seed", pretrained_cfg.seed))
    cfg.num_seeds = int(args.get("num_seeds", 1))
    cfg.eval_every = int(args.get("eval_every", pretrained_cfg.eval_every))
    cfg.progress = str(args.get("progress", "true")).lower() != "false"
    cfg.run_dir = args.get("run_dir", f"runs/{cfg.algo.name}_{cfg.world.slug}")
    return cfg


def finetune(args: dict):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from algos.loop import make_train
    from experiments import sweep, train
    from experiments.config import build, validate
    from experiments.runs import load_trainer

    for key in ("pretrained", "task"):
        if key not in args:
            raise ConfigError(f"{key}=... is required")
    pretrained = Path(args["pretrained"])
    if not pretrained.is_dir():
        raise ConfigError(f"pretrained directory {pretrained} does not exist")
    pretrained_cfg = load(pretrained)
    for key in ("algo", "world"):  # a user who names them must name the pretrained run's own
        if key in args and args[key] != pretrained_cfg[key].name:
            raise ConfigError(f"pretrained run {pretrained} is {key} {pretrained_cfg[key].name}, not {args[key]}")
    cfg = finetune_config(pretrained_cfg, args)
    cfg.algo.objective = {"name": "task", "skill": [0.0]}  # placeholder until the skill is chosen
    validate(cfg)
    learner = build(cfg)[2]
    if not learner.transferable:
        raise ConfigError(
            f"learner {cfg.algo.learner.name} of {pretrained} says nothing of its params transfers to a task reward "
            f"(Learner.transferable is empty), so it cannot be finetuned"
        )
    member = int(args.get("pretrained_seed", 0))

    trainer_p, state_p, epoch, _ = load_trainer(pretrained)
    n_members = jax.tree.leaves(state_p)[0].shape[0]
    if not 0 <= member < n_members:
        raise ConfigError(f"pretrained_seed must be in [0, {n_members}), got {member}")
    learner_p = jax.tree.map(lambda x: x[member], state_p.learner)

    # 2. Skill selection in the task world, with the pretrained objective's prior and policy.
    world_t, _, _, loop = build(_with_objective(cfg, pretrained_cfg))
    selector = make_train(loop, world_t, trainer_p.objective, trainer_p.learner)
    key = jax.random.PRNGKey(cfg.seed)
    candidates = trainer_p.objective.skill_candidates(key, int(args.get("candidates", 32)))
    returns = np.asarray(jax.jit(selector.eval_returns)(learner_p, key, candidates))
    best = int(np.argmax(returns))
    skill = [float(v) for v in np.asarray(candidates[best])]
    print(f"skill selection over {len(returns)} skills: best return {returns[best]:.2f} (median {np.median(returns):.2f})")

    # 3. Finetune from the pretrained learner.
    cfg.algo.objective = {"name": "task", "skill": skill}
    cfg.finetune = {
        "pretrained": str(pretrained.absolute()),
        "pretrained_epoch": epoch,
        "pretrained_seed": member,
        "task": args["task"],
        "skill_returns": [float(r) for r in returns],
    }
    world, objective, learner, loop = build(cfg)
    trainer = make_train(loop, world, objective, learner)
    state = trainer.init_members()(sweep.keys(cfg, sweep.members(cfg)))
    pretrained_learner = jax.tree.map(lambda x: jnp.broadcast_to(x, (cfg.num_seeds,) + x.shape), learner_p)
    carried = {name: transplant(getattr(state.learner, name), getattr(pretrained_learner, name)) for name in learner.transferable}
    state = state.replace(learner=state.learner.replace(**carried))
    return train.run(cfg, initial_state=state)


def _with_objective(cfg, pretrained_cfg):
    """``cfg`` with the pretrained objective, to build the task world and loop for skill selection."""
    out = copy.deepcopy(cfg)
    out.algo.objective = copy.deepcopy(pretrained_cfg.algo.objective)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        bad = [item for item in argv if "=" not in item or item.split("=", 1)[0] not in OPTIONS]
        if bad:
            raise ConfigError(f"unknown option(s) {', '.join(bad)}; options: {', '.join(OPTIONS)}")
        finetune(dict(item.split("=", 1) for item in argv))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (train.TrainingDiverged, train.StorageError, train.Interrupted) as e:
        return train.report(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
