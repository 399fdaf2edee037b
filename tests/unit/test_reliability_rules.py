"""Rules that keep the stack up under load and faults: stub processes found for the watchdog,
CPU threads per stub, and the timeout relations checked at start."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from frontends.timeouts import idle_below_infer_timeout
from sdconfig import Settings
from sdlauncher.server import cpu_threads
from sdlauncher.watchdog import stub_pids

ROOT = Path(__file__).resolve().parents[2]


def test_stubs_are_found_per_model_among_the_servers_children(tmp_path: Path):
    """Real child processes named like the stub, with the model file as their first argument
    (`tail FILE -f` under another name: it runs until killed and takes the file first)."""
    tail = shutil.which("tail") or "/usr/bin/tail"
    stub, other = tmp_path / "triton_python_backend_stub", tmp_path / "not_a_stub"
    shutil.copy(tail, stub)
    shutil.copy(tail, other)
    files = {}
    for model in ("streamdiffusion_canvas", "streamdiffusion_realtime"):
        files[model] = tmp_path / "model_repository" / model / "1" / "model.py"
        files[model].parent.mkdir(parents=True)
        files[model].write_text("")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    started = [
        subprocess.Popen([str(stub), str(files["streamdiffusion_canvas"]), "-f"], **quiet),
        subprocess.Popen([str(stub), str(files["streamdiffusion_realtime"]), "-f"], **quiet),
        subprocess.Popen([str(other), str(files["streamdiffusion_canvas"]), "-f"], **quiet),
    ]
    try:
        found = stub_pids(os.getpid())
        assert found == {"streamdiffusion_canvas": {started[0].pid}, "streamdiffusion_realtime": {started[1].pid}}
        started[0].kill()
        started[0].wait()
        assert stub_pids(os.getpid()) == {"streamdiffusion_realtime": {started[1].pid}}
        assert stub_pids(started[1].pid) == {}, "only children of the given server count"
    finally:
        for process in started:
            process.kill()
            process.wait()


def test_each_stub_gets_its_share_of_the_cores_on_cpu():
    cores = os.cpu_count() or 1
    assert cpu_threads({}, "cpu", 2) == {"OMP_NUM_THREADS": str(max(1, cores // 2))}
    assert cpu_threads({}, "cpu", cores * 4) == {"OMP_NUM_THREADS": "1"}
    assert cpu_threads({"OMP_NUM_THREADS": "3"}, "cpu", 2) == {}, "the operator's choice stands"
    assert cpu_threads({}, "cuda", 2) == {}


def test_configured_threads_per_model_win_on_cpu():
    assert cpu_threads({}, "cpu", 2, configured=5) == {"OMP_NUM_THREADS": "5"}
    assert cpu_threads({"OMP_NUM_THREADS": "3"}, "cpu", 2, configured=1) == {"OMP_NUM_THREADS": "1"}
    assert cpu_threads({}, "cuda", 2, configured=5) == {}, "threads are a CPU matter"


def test_the_sequence_idle_time_should_outlast_a_queued_frame():
    assert idle_below_infer_timeout(Settings()) is None  # defaults: 60 s idle, 30 s inference timeout
    tight = Settings(realtime={"pipeline": {"sequence_idle_timeout_s": 4}}, server={"infer_timeout_s": 20})
    warning = idle_below_infer_timeout(tight)
    assert warning is not None and "sequence_idle_timeout_s" in warning and "infer_timeout_s" in warning
