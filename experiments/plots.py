"""Pictures of skills: trajectories of eval rollouts, coloured by skill."""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Figures are built with the object API on an Agg canvas: no pyplot state, no global backend
# switch, so the same code serves headless training runs and notebooks (``display(fig)``).


def _figure(**kwargs) -> Figure:
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def skill_colours(skills: np.ndarray) -> np.ndarray:
    """One RGBA colour per skill: hue from the angle of the first two dims, or the category."""
    skills = np.asarray(skills)
    if skills.shape[-1] >= 2 and not np.all(np.isin(skills, (0.0, 1.0))):
        hue = (np.arctan2(skills[:, 1], skills[:, 0]) + np.pi) / (2 * np.pi)
        return matplotlib.colormaps["hsv"](hue)
    if skills.shape[-1] == 1:
        return matplotlib.colormaps["coolwarm"]((skills[:, 0] + 1) / 2)
    return matplotlib.colormaps["tab20"](np.argmax(skills, -1) % 20)


def trajectories_figure(positions: np.ndarray, skills: np.ndarray, titles: list[str]):
    """positions: [members, T, episodes, P]; skills: [members, episodes, D]. One panel per member."""
    positions, skills = np.asarray(positions), np.asarray(skills)
    n = positions.shape[0]
    cols = min(n, 4)
    rows = -(-n // cols)
    fig = _figure(figsize=(4 * cols, 4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
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


def skill_animation(positions: np.ndarray, skills: np.ndarray, interval_ms: int = 40):
    """An animation of skill rollouts in a 2-D world: positions [T, episodes, 2], skills [episodes, D].

    Show it in a notebook with ``IPython.display.HTML(anim.to_jshtml())`` (no GPU, no renderer)."""
    from matplotlib import animation

    positions, colours = np.asarray(positions), skill_colours(skills)
    fig = _figure(figsize=(4, 4))
    ax = fig.subplots()
    low, high = positions.min((0, 1)) - 0.5, positions.max((0, 1)) + 0.5
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    lines = [ax.plot([], [], color=c, lw=1)[0] for c in colours]
    dots = ax.scatter(positions[0, :, 0], positions[0, :, 1], c=colours, s=12)

    def draw(t):
        for e, line in enumerate(lines):
            line.set_data(positions[: t + 1, e, 0], positions[: t + 1, e, 1])
        dots.set_offsets(positions[t, :, :2])
        return [*lines, dots]

    return animation.FuncAnimation(fig, draw, frames=positions.shape[0], interval=interval_ms, blit=True)
