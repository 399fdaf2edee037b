"""The launcher's own checks: reading model states from tritonserver's log, and refusing taken ports."""

from __future__ import annotations

import socket

from sdlauncher.server import Endpoints, check_ports
from sdlauncher.supervision import states_from_log

# Lines as tritonserver 2.51 writes them.
LOG = [
    'I1128 15:03:09.961566 7321 model_lifecycle.cc:472] "loading: streamdiffusion_canvas:1"',
    'I1128 15:03:09.961608 7321 model_lifecycle.cc:472] "loading: streamdiffusion_realtime:1"',
    "E1128 15:03:09.961842 7321 model_lifecycle.cc:642] \"failed to load 'streamdiffusion_canvas' version 1: "
    'Internal: RuntimeError: no weights at models/x\\n\\nAt:\\n  model.py(11): initialize"',
    "I1128 15:03:09.961853 7321 model_lifecycle.cc:777] \"failed to load 'streamdiffusion_canvas'\"",
]
MODELS = ["streamdiffusion_realtime", "streamdiffusion_canvas"]


def test_states_follow_the_log() -> None:
    states, reasons = states_from_log(LOG[:2], MODELS)
    assert states == {"streamdiffusion_realtime": "LOADING", "streamdiffusion_canvas": "LOADING"}
    assert reasons == {}
    loaded = "I1128 15:03:14.1 7321 model_lifecycle.cc:838] \"successfully loaded 'streamdiffusion_realtime'\""
    states, reasons = states_from_log([*LOG, loaded], MODELS)
    assert states == {"streamdiffusion_realtime": "READY", "streamdiffusion_canvas": "UNAVAILABLE"}
    assert reasons["streamdiffusion_canvas"].startswith("Internal: RuntimeError: no weights at models/x")


def test_before_any_log_line_the_models_are_starting() -> None:
    states, _ = states_from_log([], MODELS)
    assert set(states.values()) == {"STARTING"}


def test_a_taken_port_is_named_with_the_setting_that_moves_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        problems = check_ports(Endpoints(host="127.0.0.1", grpc_port=port, http_port=0, metrics_port=0))
    assert any(f"grpc port {port}" in p and "--grpc-port" in p and "SD__TRITON__GRPC_PORT" in p for p in problems)
    assert any("must differ" in p for p in problems)  # http and metrics both asked for port 0
