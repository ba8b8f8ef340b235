"""Pictures of skills: trajectories of eval rollouts, coloured by skill."""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

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


def _plane(positions: np.ndarray) -> np.ndarray:
    """Plot coordinates [T, episodes, 2] of positions [T, episodes, P]: the xy plane, or for 1-D
    worlds (HalfCheetah) position against time."""
    if positions.shape[-1] >= 2:
        return positions[..., :2]
    time = np.broadcast_to(np.arange(len(positions), dtype=positions.dtype)[:, None, None], positions.shape)
    return np.concatenate([time, positions], -1)


def _draw_skills(ax, paths: np.ndarray, colours: np.ndarray, walls=None):
    """Draws paths [T, episodes, 2] coloured by skill, a dot at each path's end, and maze walls
    (x_min, y_min, x_max, y_max) rectangles. Returns (lines, dots) so animations can move them."""
    for x0, y0, x1, y1 in np.reshape([] if walls is None else walls, (-1, 4)):
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, color="0.3", zorder=0))
    lines = [ax.plot(paths[:, e, 0], paths[:, e, 1], color=c, lw=1)[0] for e, c in enumerate(colours)]
    dots = ax.scatter(paths[-1, :, 0], paths[-1, :, 1], color=colours, s=9, zorder=3)
    ax.grid(alpha=0.3)
    return lines, dots


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
        _draw_skills(ax, _plane(positions[i]), skill_colours(skills[i]))
        ax.set_title(titles[i], fontsize=9)
        if positions.shape[-1] >= 2:
            ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    return fig


def _animated_skills(positions, skills, walls=None, figsize=(4, 4), dpi=100):
    """A figure of skill rollouts positions [T, episodes, P] with fixed limits over the whole
    episode, and ``draw(t)``, which shows the paths up to step t and the positions at t."""
    positions = np.asarray(positions)
    paths = _plane(positions)
    fig = _figure(figsize=figsize, dpi=dpi)
    ax = fig.subplots()
    lines, dots = _draw_skills(ax, paths[:1], skill_colours(skills), walls)
    low, high = paths.min((0, 1)) - 0.5, paths.max((0, 1)) + 0.5
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    if positions.shape[-1] >= 2:
        ax.set_aspect("equal")

    def draw(t):
        for e, line in enumerate(lines):
            line.set_data(paths[: t + 1, e, 0], paths[: t + 1, e, 1])
        dots.set_offsets(paths[t])
        return [*lines, dots]

    return fig, draw


def skill_animation(positions: np.ndarray, skills: np.ndarray, interval_ms: int = 40):
    """An animation of skill rollouts: positions [T, episodes, P], skills [episodes, D].

    Show it in a notebook with ``IPython.display.HTML(anim.to_jshtml())`` (no GPU, no renderer)."""
    from matplotlib import animation

    fig, draw = _animated_skills(positions, skills)
    return animation.FuncAnimation(fig, draw, frames=len(positions), interval=interval_ms, blit=True)


def skill_video(positions: np.ndarray, skills: np.ndarray, walls=None, size: int = 192, max_frames: int = 60) -> np.ndarray:
    """Frames uint8 [frames, size, size, 3] of skill rollouts (positions [T, episodes, P]).

    For TensorBoard after each evaluation, so small and cheap: time is subsampled to at most
    ``max_frames`` steps (always keeping the first and last), and each frame is rendered on the
    Agg canvas straight into numpy."""
    fig, draw = _animated_skills(positions, skills, walls, figsize=(size / 64, size / 64), dpi=64)
    ax = fig.axes[0]
    ax.tick_params(labelsize=5)
    fig.tight_layout(pad=0.2)
    # Blitting: axes, grid and walls are drawn once; each frame redraws only the paths and dots
    # on that background, much cheaper than a full canvas draw per frame (README's design notes).
    moving = draw(0)
    for artist in moving:
        artist.set_visible(False)
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)
    for artist in moving:
        artist.set_visible(True)
    steps = np.unique(np.linspace(0, len(positions) - 1, min(len(positions), max_frames)).round().astype(int))
    frames = []
    for t in steps:
        fig.canvas.restore_region(background)
        for artist in draw(t):
            ax.draw_artist(artist)
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    return np.stack(frames)
