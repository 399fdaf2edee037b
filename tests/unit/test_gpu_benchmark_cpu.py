"""The GPU benchmark still runs: the small model on the CPU, one timed call a row, every row in the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdtools.gpu_benchmark import main


def test_gpu_benchmark_runs_on_the_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "table.md"
    args = ["--device", "cpu", "--arch", "tiny", "--size", "64", "--steps", "1", "2", "--sessions", "1", "2"]
    args += ["--warmup", "1", "--iters", "1", "--out", str(out)]
    returncode = main(args)
    done = capsys.readouterr()
    assert returncode == 0, done.out + done.err
    table = out.read_text()
    assert table in done.out
    rows = [
        line.split("|")[1:-1]
        for line in table.splitlines()
        if line.startswith("| realtime") or line.startswith("| canvas")
    ]
    keys = {(cells[0].strip(), int(cells[1]), int(cells[2])) for cells in rows}
    for batching in ("stacked", "sequential"):
        for steps in (1, 2):
            for sessions in (1, 2):
                assert (f"realtime {batching}", steps, sessions) in keys
    for batching in ("stacked", "sequential"):
        for drawings in (1, 4):
            assert (f"canvas {batching}", 4, drawings) in keys
    assert len(rows) == 12
    for cells in rows:
        assert float(cells[4]) > 0 and float(cells[6]) > 0  # ms per call, frames/s
    assert "frames/s (target 150" in table
