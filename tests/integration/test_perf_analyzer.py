"""sdtools.perf_analyzer against the session's real tritonserver: both models, a few requests each."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdconfig import load_settings
from sdtools.perf_analyzer import main

pytestmark = pytest.mark.triton


def table_rows(output: str) -> dict[str, list[str]]:
    """model name -> its row's cells, from the table the script prints last."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("model") and "throughput infer/s" in line)
    return {cells[0]: cells for cells in (line.split() for line in lines[start + 2 :]) if cells}


def test_perf_analyzer_measures_both_models(triton_server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "--config",
        str(triton_server.config_file),
        "--url",
        triton_server.grpc_url,
        "--request-count",
        "4",
        "--sequence-length",
        "2",
        "--warmup",
        "1",
        "--output-dir",
        str(tmp_path),
    ]
    returncode = main(args)
    proc = capsys.readouterr()
    report = f"stdout:\n{proc.out}\nstderr:\n{proc.err}"
    assert returncode == 0, report

    settings = load_settings(triton_server.config_file)
    rows = table_rows(proc.out)
    for mode in ("realtime", "canvas"):
        model = settings.model_name(mode)
        assert model in rows, report
        _, concurrency, throughput, p50, p95, p99 = rows[model]
        assert concurrency == "1"
        assert float(throughput) > 0, report
        assert 0 < float(p50) <= float(p95) <= float(p99), report
    assert (tmp_path / "input_data.json").is_file()
