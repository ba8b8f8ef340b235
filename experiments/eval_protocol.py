"""Evaluation of a run's policies: coverage, object coverage and zero-shot goal reaching.

Used between training chunks by ``experiments.train`` and on saved runs by ``experiments.evaluate``.
Every policy metric is reported beside the same protocol run with uniformly random actions.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from worlds.base import goal_positions


def coverage(positions, cell: float) -> int:
    """METRA's state coverage: distinct floor(position / cell) cells over all given positions.

    ``positions``: [..., P] (any leading axes: time, episodes)."""
    positions = np.asarray(positions)
    flat = positions.reshape(-1, positions.shape[-1])
    return int(len(np.unique(np.floor(flat / cell), axis=0)))


def episode_return(rewards) -> float:
    """Mean undiscounted return over episodes of rewards [T+1, episodes] (row 0 is the reset)."""
    return float(np.mean(np.sum(np.asarray(rewards)[1:], 0)))


def goal_metrics(final_positions, goals, threshold: float) -> tuple[float, float]:
    """(success rate, mean final distance) of final positions [G, P] against goals [G, P]."""
    distance = np.linalg.norm(np.asarray(final_positions) - np.asarray(goals), axis=-1)
    return float(np.mean(distance < threshold)), float(np.mean(distance))


def goals_reached(trajectories, goals, threshold: float) -> np.ndarray:
    """Per goal: did its episode come within ``threshold`` of it at any step? [T+1, G, P] -> [G].
    SGCRL's success (its reward is 1 at every step near g*); an agent that passes g* counts."""
    distance = np.linalg.norm(np.asarray(trajectories) - np.asarray(goals), axis=-1)
    return distance.min(0) < threshold


class Evaluator:
    """Jitted eval rollouts of a trainer's policies, vmapped over seeds; metrics on the host."""

    def __init__(self, trainer, eval_episodes: int, seed: int):
        self.trainer, self.episodes, self.seed = trainer, eval_episodes, seed
        spec = trainer.world.spec
        self.cell = spec.coverage_cell
        own = trainer.objective.eval_goals  # e.g. SGCRL's single goal g*; None: the world's ring
        self.goals = goal_positions(spec) if own is None else np.asarray(own, np.float32).reshape(-1, spec.position_size)
        self.threshold = spec.goal_threshold
        self.has_goals = len(self.goals) > 0 and trainer.objective.goal_reaching
        # Policy and random-action baseline share one compiled program each (the flag is traced).
        self._rollouts = jax.jit(jax.vmap(trainer.eval_positions, in_axes=(0, None, None, None)), static_argnums=2)
        self._goal_rollouts = jax.jit(jax.vmap(trainer.eval_goals, in_axes=(0, 0, None, None, None)))

    def __call__(self, state, epoch: int):
        """Metrics per seed (list of dicts) and the policy trajectories for pictures."""
        key = jax.random.fold_in(jax.random.PRNGKey(self.seed), 1_000_000 + epoch)
        trajectories, skills = self._rollouts(state.learner, key, self.episodes, jnp.bool_(False))
        random_trajectories, _ = self._rollouts(state.learner, key, self.episodes, jnp.bool_(True))
        random_trajectories = jax.tree.map(lambda x: x[0], random_trajectories)  # the same for every seed
        baseline = {
            "eval/coverage_random": coverage(random_trajectories["position"], self.cell),
            "eval/return_random": episode_return(random_trajectories["reward"]),
        }
        if "object" in random_trajectories:
            baseline["eval/object_coverage_random"] = coverage(random_trajectories["object"], self.cell)
        if self.has_goals:
            goals = jnp.asarray(self.goals)
            random_goal_trajectories = self._goal_rollouts(state.learner, state.objective, key, goals, jnp.bool_(True))[0]
            success, distance = goal_metrics(random_goal_trajectories[-1], self.goals, self.threshold)
            reached = float(np.mean(goals_reached(random_goal_trajectories, self.goals, self.threshold)))
            baseline.update({"eval/goal_success_random": success, "eval/goal_distance_random": distance, "eval/goal_reached_random": reached})
            goal_trajectories = np.asarray(self._goal_rollouts(state.learner, state.objective, key, goals, jnp.bool_(False)))
        rows = []
        for s in range(np.asarray(skills).shape[0]):
            row = {
                "eval/coverage": coverage(trajectories["position"][s], self.cell),
                "eval/return": episode_return(trajectories["reward"][s]),  # the world's task reward
            }
            if "object" in trajectories:
                row["eval/object_coverage"] = coverage(trajectories["object"][s], self.cell)
            if self.has_goals:
                success, distance = goal_metrics(goal_trajectories[s, -1], self.goals, self.threshold)
                row.update({"eval/goal_success": success, "eval/goal_distance": distance})
                row["eval/goal_reached"] = float(np.mean(goals_reached(goal_trajectories[s], self.goals, self.threshold)))
            rows.append({**row, **baseline})
        return rows, np.asarray(trajectories["position"]), np.asarray(skills)


def evaluation_rows(metrics, members, seed: int, step: int, epoch: int, **where) -> list[dict]:
    """The rows an evaluation logs, one per member (``metrics.jsonl``, ``eval.jsonl``): ``step``,
    ``seed`` and ``epoch`` (then ``where``, e.g. the checkpoint evaluated), the Evaluator's metrics
    and, for a member of a sweep, its name and its ``sweep/<config path>`` settings.

    ``metrics``: the Evaluator's rows; ``members``: the run's ``sweep.Member``s; ``seed``: the run's
    first seed."""
    rows = []
    for member, row in zip(members, metrics):
        row = {"step": step, "seed": seed + member.seed_index, "epoch": epoch, **where, **row}
        if member.settings:
            row["member"] = member.name(seed)
            row.update({f"sweep/{path}": value for path, value in member.settings.items()})
        rows.append(row)
    return rows


def row_label(row: dict) -> str:
    """How messages and figures name a row's member: its sweep name, else ``seed <n>``."""
    return row.get("member", f"seed {row['seed']}")


def save_skill_figure(run_dir, step: int, positions, skills, rows, logger=None) -> Path:
    """plots/skills_<step>.png: one panel per seed; also sent to TensorBoard if a logger is given."""
    from experiments.plots import trajectories_figure

    titles = [f"{row_label(r)}: coverage {r['eval/coverage']} (random {r['eval/coverage_random']})" for r in rows]
    fig = trajectories_figure(positions, skills, titles)
    path = Path(run_dir) / "plots" / f"skills_{step:010d}.png"
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=80)
    if logger is not None:
        logger.figure("eval/skills", fig, step)
    return path


def log_skill_video(logger, step: int, positions, skills, walls=None) -> None:
    """A TensorBoard GIF of the first member's eval rollouts (``skills/video``); ``walls`` are maze
    rectangles to draw, if the world has them."""
    from experiments.plots import skill_video

    logger.video("skills/video", skill_video(positions[0], skills[0], walls), step)
