"""The production topology on this machine (sdtools/topology.py): Debian's nginx terminating TLS in
front of two frontends and two tritonservers, with the short chaos run of sdtools/chaos.py: a
Triton killed, a frontend restarted, a frontend crashed and nginx reloaded, under realtime and
canvas sessions over wss/https that verify nginx's certificate.

What must hold: no drawing silently lost (each got a part or an error, or its connection closed),
no surplus part, every session served and, when interrupted, reconnected and served again.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sdtools.chaos import KINDS, parse_args, print_report, run
from sdtools.topology import NGINX, Topology, nginx_available

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory):
    assert nginx_available(), f"{NGINX} or openssl is missing: scripts/setup.sh --dev installs Debian's nginx-light"
    topology = Topology(tmp_path_factory.mktemp("topology"))
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()


def test_nginx_serves_the_frontends_over_verified_tls_only(topology: Topology):
    with urllib.request.urlopen(f"{topology.base_url}/readyz", context=topology.client_ssl(), timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Server"] == "nginx"  # server_tokens off: no version
    with pytest.raises(urllib.error.URLError) as refused:  # a client that trusts only the system CAs
        urllib.request.urlopen(f"{topology.base_url}/readyz", context=ssl.create_default_context(), timeout=10)
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
    config = (topology.folder / "nginx" / "nginx.conf").read_text()
    for setting in ("proxy_buffering off;", "proxy_read_timeout 3600s;", "client_max_body_size 16m;"):
        assert setting in config


def test_a_short_chaos_run_loses_no_drawing_and_every_session_comes_back(topology: Topology, capsys):
    short = "--sessions 6 --duration 90 --fault-every 25 --draw-every 2 --drain 30 --warm-up 30"
    args = parse_args([*short.split(), "--folder", str(topology.folder)])
    report = asyncio.run(run(topology, args))
    with capsys.disabled():
        print_report(report)
    canvas, sessions = report["canvas"], report["sessions"]
    assert [f["kind"] for f in report["faults"]] == list(KINDS)
    assert topology.check_alive() == []
    assert canvas["drawings_sent"] > 20 and canvas["answered_with_a_part"] > 0
    assert canvas["silently_lost"] == 0, canvas
    assert canvas["surplus_parts"] == 0, canvas
    assert sessions["not_served"] == [] and sessions["not_reconnected"] == [], sessions
    assert report["realtime"]["parts"] > 0
    assert all(f["realtime"]["sessions_without_a_later_part"] == 0 for f in report["faults"]), report["faults"]
    # the sessions went through nginx: WebSocket upgrades and MJPEG streams in its access log
    topology.stop()
    access = Path(topology.folder / "nginx" / "access.log").read_text()
    assert '"GET /api/realtime/ws/' in access and '" 101 ' in access
    assert '"GET /api/canvas/stream/' in access
