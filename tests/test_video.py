"""Skill videos: frames from eval trajectories, a GIF in TensorBoard, and a training run that writes one."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

from experiments.logger import RunLogger
from experiments.plots import skill_video


def straight_out(steps=101, episodes=8):
    """positions [T, episodes, 2] and skills [episodes, 2]: each skill walks straight out its own way."""
    angles = np.linspace(0, 2 * np.pi, episodes, endpoint=False)
    skills = np.stack([np.cos(angles), np.sin(angles)], -1)
    return np.linspace(0, 5, steps)[:, None, None] * skills, skills


def tb_images(member_dir, tag="skills/video") -> list:
    """The image summaries with ``tag`` in one member's TensorBoard directory (all of them kept)."""
    events = EventAccumulator(str(member_dir), size_guidance={IMAGES: 0})
    events.Reload()
    return events.Images(tag) if tag in events.Tags()[IMAGES] else []


def gif(image) -> Image.Image:
    return Image.open(io.BytesIO(image.encoded_image_string))


def test_frames_are_small_uint8_and_show_the_skills_moving():
    positions, skills = straight_out()
    frames = skill_video(positions, skills)
    assert frames.shape == (60, 192, 192, 3) and frames.dtype == np.uint8  # 101 steps subsampled to 60
    assert not np.array_equal(frames[0], frames[-1])
    assert len({frame.tobytes() for frame in frames}) == 60  # every frame moves on
    walled = skill_video(positions, skills, walls=[[-1.0, 2.0, 1.0, 3.0]])
    assert not np.array_equal(walled[0], frames[0])  # maze walls are drawn
    # 1-D worlds (HalfCheetah) draw position against time; short episodes keep every step.
    short = skill_video(positions[:20, :, :1], skills, size=96)
    assert short.shape == (20, 96, 96, 3) and not np.array_equal(short[0], short[-1])


def test_video_is_an_animated_gif_in_the_first_members_tensorboard(tmp_path):
    positions, skills = straight_out()
    logger = RunLogger(tmp_path, 2)
    logger.video("skills/video", skill_video(positions, skills), step=80, fps=10)
    logger.close()
    [image] = tb_images(tmp_path / "tb" / "seed_0")
    assert image.step == 80 and (image.width, image.height) == (192, 192)
    decoded = gif(image)
    assert decoded.format == "GIF" and decoded.size == (192, 192) and decoded.n_frames == 60
    assert decoded.info["duration"] == 100  # 10 fps
    assert tb_images(tmp_path / "tb" / "seed_1") == []  # like figure(): the first member only


def test_video_is_a_noop_without_tensorboard(tmp_path):
    RunLogger(tmp_path, 1, tensorboard=False).video("skills/video", np.zeros((2, 8, 8, 3), np.uint8), step=0)
    assert not (tmp_path / "tb").exists()


def test_a_training_run_writes_a_skill_video_at_each_evaluation(tmp_path):
    from experiments import train
    from tests.test_train import TINY

    run_dir = tmp_path / "run"
    # The U maze: the walls come from the world (PointWorld.walls) through train.run.
    assert train.main(TINY + [f"run_dir={run_dir}", "total_steps=160", "tensorboard=true", "world.options.maze=u"]) == 0
    videos = tb_images(run_dir / "tb" / "seed_0")
    assert [v.step for v in videos] == [80, 160]
    decoded = gif(videos[-1])
    assert decoded.format == "GIF" and decoded.size == (192, 192) and decoded.n_frames > 1
    assert train.main(TINY + [f"run_dir={tmp_path / 'off'}", "total_steps=80", "tensorboard=true", "video=false"]) == 0
    assert tb_images(tmp_path / "off" / "tb" / "seed_0") == []
