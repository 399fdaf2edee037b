"""Triton as the launcher starts it, probed the way any local process could: model control and the
repository index refuse a request without the launcher's key (HTTP and gRPC), the launcher's
watchdog still reloads a model whose stub died, and a realtime sequence leaves no trace of its
correlation id in the server's log at the default level.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from test_faults import CANVAS, REALTIME, stub_of
from triton_calls import inputs, jpeg, scene
from tritonclient.utils import InferenceServerException

from sdlauncher.server import ADMIN_HEADER, ADMIN_KEY_ENV, RESTRICTED_APIS
from tests.servers import TritonServer, launch_triton

pytestmark = pytest.mark.triton
OPERATOR_KEY = "operator-key-for-tests"
SEQUENCE_ID = 7340019283
"""A correlation id unlikely to appear in a log by chance."""


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    env = {"SD__TRITON__WATCHDOG_INTERVAL_S": "1", ADMIN_KEY_ENV: OPERATOR_KEY}
    server = launch_triton(tmp_path_factory.mktemp("lockdown"), extra_env=env)
    yield server
    server.server.stop()


def post(url: str, headers: dict[str, str] | None = None, payload: bytes = b"{}") -> tuple[int, str]:
    request = urllib.request.Request(url, data=payload, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def ready(triton: TritonServer, model: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{triton.http_url}/v2/models/{model}/ready", timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.mark.parametrize("headers", [{}, {ADMIN_HEADER: "guessed"}], ids=["no key", "wrong key"])
def test_http_model_control_and_index_are_refused_without_the_key(triton: TritonServer, headers: dict[str, str]):
    base = f"http://{triton.http_url}/v2/repository"
    for url in (f"{base}/index", f"{base}/models/{CANVAS}/unload", f"{base}/models/{CANVAS}/load"):
        status, body = post(url, headers)
        assert status == 403, f"{url}: {status} {body}"
        assert "restricted" in body.lower() or ADMIN_HEADER in body, body
    status, body = post(f"{base}/models/no_such_model/load", headers)
    assert status == 403, body
    http = f"http://{triton.http_url}/v2"
    for url, payload in (
        (f"{http}/logging", b'{"log_verbose_level": 1}'),  # verbose logs would show correlation ids
        (f"{http}/trace/setting", b'{"trace_level": ["TIMESTAMPS"], "trace_rate": "1"}'),
        (f"{http}/systemsharedmemory/region/probe/register", b'{"key": "/probe", "offset": 0, "byte_size": 64}'),
    ):
        status, body = post(url, headers, payload)
        assert status == 403, f"{url}: {status} {body}"
    assert ready(triton, CANVAS) and ready(triton, REALTIME)


def test_grpc_model_control_is_refused_without_the_key(triton: TritonServer):
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    for call in (
        lambda: client.unload_model(CANVAS),
        lambda: client.load_model("no_such_model"),
        lambda: client.get_model_repository_index(),
        lambda: client.unload_model(CANVAS, headers={ADMIN_HEADER: "guessed"}),
        lambda: client.update_log_settings({"log_verbose_level": 1}),
        lambda: client.get_trace_settings(),
        lambda: client.get_system_shared_memory_status(),
    ):
        with pytest.raises(InferenceServerException) as refused:
            call()
        assert "restricted" in str(refused.value).lower() or ADMIN_HEADER in str(refused.value), refused.value
    assert client.is_model_ready(CANVAS) and client.is_model_ready(REALTIME)
    # what stays open to a client, by design: health, metadata, statistics and inference
    assert client.get_model_metadata(CANVAS).name == CANVAS
    assert client.get_inference_statistics(CANVAS).model_stats
    result = client.infer(CANVAS, inputs(jpeg(scene(128, 1)), PROMPT="a red circle"))
    assert result.as_numpy("IMAGE") is not None


def test_the_operators_key_opens_the_index_over_http_and_grpc(triton: TritonServer):
    status, body = post(f"http://{triton.http_url}/v2/repository/index", {ADMIN_HEADER: OPERATOR_KEY})
    assert status == 200 and CANVAS in body, body
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    grpc_header = f"triton-grpc-protocol-{ADMIN_HEADER}"  # Triton's prefix for restricted gRPC headers
    index = client.get_model_repository_index(headers={grpc_header: OPERATOR_KEY}, as_json=True)
    assert {m["name"] for m in index["models"]} >= {CANVAS, REALTIME}


def test_the_watchdog_still_reloads_a_model_whose_stub_died(triton: TritonServer):
    os.kill(stub_of(triton, CANVAS), signal.SIGKILL)
    deadline = time.monotonic() + 120
    while not any(f"watchdog: {CANVAS} reloaded" in line for line in triton.server.lines):
        assert time.monotonic() < deadline, f"no reload by the watchdog:\n{triton.server.output()}"
        assert not any("reloading" in line and "failed" in line for line in triton.server.lines), triton.server.output()
        time.sleep(0.5)
    while not ready(triton, CANVAS):
        assert time.monotonic() < deadline, "canvas not ready after the reload"
        time.sleep(0.5)
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    assert client.infer(CANVAS, inputs(jpeg(scene(128, 2)), PROMPT="a blue line")).as_numpy("IMAGE") is not None


def test_realtime_sequences_leave_no_correlation_id_in_the_server_log(triton: TritonServer):
    """An ended sequence, one that is abandoned and expires, and a frame for a sequence never started."""
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    frames = [jpeg(scene(128, seed)) for seed in range(3)]
    for sid in (SEQUENCE_ID, SEQUENCE_ID + 1):
        for i, frame in enumerate(frames):
            client.infer(REALTIME, inputs(frame, PROMPT="a cat"), sequence_id=sid, sequence_start=i == 0)
    client.infer(REALTIME, inputs(b""), sequence_id=SEQUENCE_ID, sequence_end=True)
    time.sleep(triton.settings.realtime.pipeline.sequence_idle_timeout_s + 2)  # SEQUENCE_ID + 1 expires
    with pytest.raises(InferenceServerException):
        client.infer(REALTIME, inputs(frames[0]), sequence_id=SEQUENCE_ID + 2)  # no START
    client.infer(REALTIME, inputs(frames[0]), sequence_id=SEQUENCE_ID + 3, sequence_start=True)
    time.sleep(1.0)  # the stub's output reaches the log file through a pipe
    log = Path(triton.log_file).read_text(errors="replace")
    assert "successfully loaded" in log  # the log is the one this server writes
    launcher_output = "\n".join(triton.server.lines)
    for sid in range(SEQUENCE_ID, SEQUENCE_ID + 4):
        assert str(sid) not in log and str(sid) not in launcher_output


def test_the_launcher_check_hides_an_operator_key(tmp_path: Path):
    env = {**os.environ, "SD_TRITON_ADMIN_KEY": "operator-secret-1"}
    config = Path(__file__).resolve().parents[1] / "config.test.yaml"
    result = subprocess.run(
        [sys.executable, "scripts/launch_triton.py", "--config", str(config), "--run-dir", str(tmp_path), "--check"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "operator-secret-1" not in result.stdout
    assert f"--http-restricted-api={RESTRICTED_APIS}:{ADMIN_HEADER}=$SD_TRITON_ADMIN_KEY" in result.stdout
