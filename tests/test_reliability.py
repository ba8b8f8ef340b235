"""A run directory survives crashes, full and read-only disks and signals, and bad input about the
run directory is one line before any compile (issue #17). See also tests/test_train.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import analysis, train
from experiments.logger import read_rows, trim_record
from tests.test_train import COMPILES, TINY, rows

ROOT = Path(__file__).resolve().parents[1]
TIMING = "time/env_steps_per_s"  # the only field that differs between identical runs


def _child_env(**extra) -> dict:
    """The environment of a training subprocess: this checkout first on its path."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, **extra}


def _train(args, timeout=600, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.train", *args],
        cwd=ROOT, env=_child_env(**env), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _one_error_line(err: str) -> str:
    err = err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


# --- bad run directories: one line, exit code 2, nothing compiled, nothing written ---------------


def _file(tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    return [f"run_dir={tmp_path / 'a_file'}"], "is a file, not a directory"


def _config_yaml(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("seed: 7\n")  # a run that has no checkpoint yet
    return [f"run_dir={tmp_path / 'run'}"], "already holds a run; continue it with resume="


def _corrupt_config(tmp_path):
    (tmp_path / "run" / "checkpoints" / "2").mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text("algo: [metra\nworld: {")
    return [f"resume={tmp_path / 'run'}"], "config.yaml is unreadable ("


def _empty(tmp_path):
    return ["run_dir="], "run_dir is empty"


def _huge_buffer(tmp_path):
    return [f"run_dir={tmp_path / 'run'}", "loop.buffer_size=2000000000"], "the largest loop.buffer_size that fits is"


@pytest.mark.parametrize("case", [_empty, _file, _config_yaml, _corrupt_config, _huge_buffer])
def test_bad_run_directory_is_one_line_before_any_compile(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, fragment = case(tmp_path)
    if case is _huge_buffer:
        # Building the Trainer runs two tiny eager ops in algos/ (compiled once per process); warm
        # them up so that the count below sees only what the memory check lets through.
        cfg = train.resolve_config(TINY + [f"run_dir={tmp_path / 'warm'}"])
        train._make_trainer(cfg, *train.build(cfg))
    before_files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    before_text = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    before = COMPILES.count
    code = train.main(TINY + args)
    err = _one_error_line(capsys.readouterr().err)
    assert code == 2 and fragment in err, err
    assert COMPILES.count == before, "bad input must be rejected before anything is compiled"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before_files, "nothing may be written"
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before_text, "nothing may be overwritten"


def test_huge_buffer_names_the_figures(tmp_path, capsys):
    assert train.main(TINY + [f"run_dir={tmp_path / 'run'}", "loop.buffer_size=2000000000"]) == 2
    err = capsys.readouterr().err
    assert "the run's state (83,9" in err and "MiB" in err and "does not fit in the memory" in err, err
    fits = int(err.rsplit("fits is ", 1)[1].replace(",", "").strip())
    assert 0 < fits < 2_000_000_000


# --- the record: trimmed to the restored checkpoint, damaged lines dropped and reported ---------


def _write_lines(path, lines):
    path.write_text("".join(lines))


def test_trim_record_keeps_rows_up_to_the_restored_epoch_and_drops_a_cut_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    good = [json.dumps({"step": 40 * e, "seed": s, "epoch": e}) + "\n" for e in (1, 2, 3) for s in (0, 1)]
    _write_lines(path, good + ['{"step": 160, "seed": 0, "ep'])
    message = trim_record(path, 2)
    assert "kept the rows up to epoch 2" in message and "dropped 2 row(s)" in message and "1 damaged line(s)" in message
    assert path.read_text() == "".join(good[:4])
    assert trim_record(path, 2) is None  # already consistent: left alone
    _write_lines(path, good[:2] + [good[2].rstrip("\n")])  # whole rows, but the last line unended
    assert trim_record(path, 3) is not None and path.read_text().endswith("\n")
    assert len(read_rows(path)[0]) == 3


def test_analysis_skips_a_damaged_line_and_a_repeated_row_with_a_warning(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("algo: {name: metra}\nworld: {name: point}\n")
    rows_ = [{"step": 100, "seed": s, "eval/coverage": 1.0 + s} for s in (0, 1)]
    lines = [json.dumps(r) + "\n" for r in rows_]
    _write_lines(run / "metrics.jsonl", lines + ['{"step": 100, "se'] + ["\n"] + lines[:1])
    with pytest.warns(UserWarning) as caught:
        frame = analysis.load_run(run)
    messages = " ".join(str(w.message) for w in caught)
    assert "metrics.jsonl:3: not a JSON object" in messages and "1 repeated row(s)" in messages
    assert sorted(zip(frame["step"], frame["seed"])) == [(100, 0), (100, 1)]  # the repeat is not another seed


# --- crashes: SIGKILL at chosen moments, SIGTERM, a cut line; the record ends as if uninterrupted


def _without_timing(record):
    return [{k: v for k, v in row.items() if k != TIMING} for row in record]


@pytest.mark.slow
def test_killed_and_resumed_run_has_the_uninterrupted_record(tmp_path):
    args = TINY + ["eval_every=1", "total_steps=240"]  # 6 epochs, a checkpoint after each
    straight = tmp_path / "straight"
    assert train.main(args + [f"run_dir={straight}"]) == 0
    run_dir = tmp_path / "run"
    resume = [f"resume={run_dir}"]

    # Killed while compiling the first chunk: no checkpoint yet; a resume starts the run again.
    out = _train(args + [f"run_dir={run_dir}"], SKILLAX_FAULT="chunk:0")
    assert out.returncode == -signal.SIGKILL and not (run_dir / "checkpoints" / "1").exists(), out.stderr
    # Killed between the rows of epoch 2 and their checkpoint.
    out = _train(resume, SKILLAX_FAULT="rows:2")
    assert out.returncode == -signal.SIGKILL, out.stderr
    assert [r["epoch"] for r in rows(run_dir)] == [1, 2] and not (run_dir / "checkpoints" / "2").exists()
    # A line cut short by the crash; then killed while the checkpoint of epoch 2 is written.
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 120, "seed": 0, "epo')
    out = _train(resume, SKILLAX_FAULT="checkpoint:2")
    assert out.returncode == -signal.SIGKILL, out.stderr
    assert "kept the rows up to epoch 1" in out.stderr and "1 damaged line(s)" in out.stderr, out.stderr
    # Killed while training the chunk after epoch 3 (past this process's compile).
    out = _train(resume, SKILLAX_FAULT="chunk:3")
    assert out.returncode == -signal.SIGKILL, out.stderr
    # SIGTERM (preemption) right after the rows of epoch 5: checkpointed, one line, exit 128+15.
    out = _train(resume, SKILLAX_FAULT="rows:5:SIGTERM")
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 128 + signal.SIGTERM, out.stderr
    assert last.startswith("stopped: SIGTERM after the checkpoint of epoch 5") and f"resume={run_dir}" in last, last
    # The newest checkpoint corrupt: the resume falls back to epoch 4, saying so in a few lines
    # (no logging from orbax, no traceback), and trims the record to it.
    for path in (run_dir / "checkpoints" / "5").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    out = _train(resume)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("checkpoint step 5 in") and "unreadable" in lines[0], lines
    assert lines[1].startswith("resuming from step 4") and "kept the rows up to epoch 4" in lines[2], lines

    record = rows(run_dir)
    assert [(r["epoch"], r["seed"]) for r in record] == [(e, 0) for e in range(1, 7)]  # one row per evaluation and seed
    assert _without_timing(record) == _without_timing(rows(straight))


# --- full and read-only disks: a tmpfs of our own (in a user namespace) -------------------------


def _namespace_shell(script: str, out_dir: Path) -> subprocess.CompletedProcess:
    """Run ``script`` (sh) as root of a fresh user and mount namespace, where it may mount a tmpfs."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to make a small filesystem")
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user namespaces are not allowed here: cannot mount a small filesystem")
    env = _child_env(PYTHON=sys.executable, OUT=str(out_dir), TINY=" ".join(TINY))
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


@pytest.mark.slow
def test_full_and_read_only_disks_are_one_line_and_keep_the_last_checkpoint(tmp_path):
    from experiments.runs import load_trainer

    mnt = tmp_path / "mnt"
    (mnt / "small").mkdir(parents=True)
    (mnt / "roomy").mkdir()
    # small: room for the config and one checkpoint of a TINY run (~270 KiB on tmpfs), not two.
    script = f"""
    mount -t tmpfs -o size=560k tmpfs {mnt}/small && mount -t tmpfs -o size=8m tmpfs {mnt}/roomy || exit 99
    $PYTHON -m experiments.train $TINY eval_every=1 total_steps=400 run_dir={mnt}/small/run 2> $OUT/full.err
    echo $? > $OUT/full.rc; cp -r {mnt}/small/run $OUT/full_run
    $PYTHON -m experiments.train $TINY run_dir={mnt}/small/new 2> $OUT/new_full.err; echo $? > $OUT/new_full.rc
    $PYTHON -m experiments.train $TINY total_steps=80 run_dir={mnt}/roomy/run 2> /dev/null || exit 98
    mount -o remount,ro {mnt}/roomy || exit 97
    $PYTHON -m experiments.train resume={mnt}/roomy/run total_steps=160 2> $OUT/resume_ro.err; echo $? > $OUT/resume_ro.rc
    $PYTHON -m experiments.train $TINY run_dir={mnt}/roomy/new 2> $OUT/new_ro.err; echo $? > $OUT/new_ro.rc
    cp -r {mnt}/roomy/run $OUT/ro_run
    """
    out = _namespace_shell(script, tmp_path)
    if out.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr

    # Disk full while training: one line with the path and what was kept, exit 1.
    err = _one_error_line((tmp_path / "full.err").read_text().strip().splitlines()[-1])
    assert (tmp_path / "full.rc").read_text().strip() == "1"
    assert "No space left on device" in err and "resume=" in err, err
    kept = int(err.split("kept checkpoint ", 1)[1].split()[0])
    _, _, epoch, _ = load_trainer(tmp_path / "full_run")  # the previous checkpoint restores
    assert epoch == kept >= 1
    # The rows of the epoch whose checkpoint failed may be there: a resume trims them.
    assert [r["epoch"] for r in rows(tmp_path / "full_run")] in (list(range(1, kept + 1)), list(range(1, kept + 2)))

    # A new run on the full disk is refused before it compiles: no room for a checkpoint.
    assert (tmp_path / "new_full.rc").read_text().strip() == "2"
    err = _one_error_line((tmp_path / "new_full.err").read_text())
    assert "does not fit in the free space on" in err and "the largest loop.buffer_size that fits is" in err, err

    # Read-only: resume and a new run are refused before anything is written, the run intact.
    for name in ("resume_ro", "new_ro"):
        assert (tmp_path / f"{name}.rc").read_text().strip() == "2"
        err = _one_error_line((tmp_path / f"{name}.err").read_text())
        assert "cannot be written" in err and "read-only" in err, err
    _, _, epoch, _ = load_trainer(tmp_path / "ro_run")
    assert epoch == 2 and [r["epoch"] for r in rows(tmp_path / "ro_run")] == [2]


# --- the Ray launcher binds to localhost unless told otherwise ----------------------------------


@pytest.mark.parametrize("given, seen", [(None, "0"), ("1", "1")], ids=["default: loopback", "explicit opt-in"])
def test_multirun_keeps_ray_on_loopback_unless_asked(given, seen, monkeypatch, tmp_path, capsys):
    from experiments.config import ConfigError

    if given is None:
        monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", raising=False)
    else:
        monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", given)
    during = []

    def fake_run(cfg):  # what a Ray instance started by this multirun would read
        during.append(os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"))
        raise ConfigError("stop here")

    monkeypatch.setattr(train, "run", fake_run)
    assert train.main(["-m", "seed=1", f"hydra.sweep.dir={tmp_path}"]) == 2
    assert during == [seen]
    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == given  # restored afterwards


def test_tensorboard_hides_the_events_a_resume_writes_again(tmp_path):
    """A resume from the checkpoint at step 20 writes step 30 again; TensorBoard shows it once,
    with the new value (the logger's ``purge_step``)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from experiments.logger import RunLogger

    first = RunLogger(tmp_path, 1)
    for step in (10, 20, 30):
        first.log([{"step": step, "seed": 0, "epoch": step // 10, "eval/coverage": float(step)}])
    first.close()
    resumed = RunLogger(tmp_path, 1, purge_step=21)
    resumed.log([{"step": 30, "seed": 0, "epoch": 3, "eval/coverage": 99.0}])
    resumed.close()
    events = EventAccumulator(str(tmp_path / "tb" / "seed_0"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("eval/coverage")] == [(10, 10.0), (20, 20.0), (30, 99.0)]
