"""Both notebooks execute top to bottom on a tiny run, so they never rot."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def execute(name: str, cwd: Path, env: dict) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return notebook


def outputs(notebook, kind: str) -> list[str]:
    return [
        str(out.get("data", {}).get(kind, ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    ]


@pytest.mark.slow
def test_quickstart_then_explore_runs_execute(tmp_path):
    run_dir = tmp_path / "runs" / "quickstart"
    quick = execute("quickstart.ipynb", tmp_path, {"SKILLAX_QUICKSTART_STEPS": "3200", "SKILLAX_QUICKSTART_DIR": str(run_dir)})
    assert (run_dir / "metrics.jsonl").is_file()
    assert any("<img" in html or "Animation" in html for html in outputs(quick, "text/html"))
    assert any(png for png in outputs(quick, "image/png"))  # the curves and skill pictures rendered

    explore = execute("explore_runs.ipynb", tmp_path, {"SKILLAX_RUNS": str(tmp_path / "runs" / "*")})
    tables = " ".join(outputs(explore, "text/html"))
    assert "eval/coverage" in tables and "Animation" in tables
