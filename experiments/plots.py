"""Pictures of skills: trajectories of eval rollouts, coloured by skill."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def skill_colours(skills: np.ndarray) -> np.ndarray:
    """One RGBA colour per skill: hue from the angle of the first two dims, or the category."""
    skills = np.asarray(skills)
    if skills.shape[-1] >= 2 and not np.all(np.isin(skills, (0.0, 1.0))):
        hue = (np.arctan2(skills[:, 1], skills[:, 0]) + np.pi) / (2 * np.pi)
        return plt.cm.hsv(hue)
    if skills.shape[-1] == 1:
        return plt.cm.coolwarm((skills[:, 0] + 1) / 2)
    return plt.cm.tab20(np.argmax(skills, -1) % 20)


def trajectories_figure(positions: np.ndarray, skills: np.ndarray, titles: list[str]):
    """positions: [members, T, episodes, P]; skills: [members, episodes, D]. One panel per member."""
    positions, skills = np.asarray(positions), np.asarray(skills)
    n = positions.shape[0]
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        colours = skill_colours(skills[i])
        for e in range(positions.shape[2]):
            path = positions[i, :, e]
            if path.shape[-1] >= 2:
                ax.plot(path[:, 0], path[:, 1], color=colours[e], lw=1)
                ax.plot(path[-1, 0], path[-1, 1], "o", color=colours[e], ms=3)
            else:  # 1-D worlds (HalfCheetah): position against time
                ax.plot(np.arange(len(path)), path[:, 0], color=colours[e], lw=1)
        ax.set_title(titles[i], fontsize=9)
        if path.shape[-1] >= 2:
            ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
