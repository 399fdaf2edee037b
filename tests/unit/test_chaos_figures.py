"""The chaos run's figures from what its clients saw (sdtools/chaos.py): recovery after a fault,
whether a session came back, whether memory stayed flat, and the nginx configuration it writes."""

from __future__ import annotations

from pathlib import Path

import yaml

from sdtools.chaos import Sample, Slot, memory_summary, realtime_recovery
from sdtools.topology import REPO_ROOT as ROOT
from sdtools.topology import Topology, distinct_free_ports


def realtime_slot(index: int, part_times: list[float]) -> Slot:
    slot = Slot("realtime", index)
    slot.tally.part_times[index] = part_times
    slot.tally.realtime_parts = len(part_times)
    return slot


def test_recovery_counts_only_sessions_whose_parts_stopped():
    steady = realtime_slot(0, [float(t) for t in range(0, 40)])  # a part a second throughout
    stalled = realtime_slot(1, [*map(float, range(0, 10)), 17.5, 18.5])  # nothing from 10 to 17.5
    figures = realtime_recovery([steady, stalled], at=10.2)
    assert figures["sessions_affected"] == 1
    assert figures["recovery_max_s"] == 7.3
    assert figures["next_part_max_s"] == 7.3
    assert figures["sessions_without_a_later_part"] == 0


def test_a_session_with_no_part_after_the_fault_is_reported():
    figures = realtime_recovery([realtime_slot(0, [1.0, 2.0])], at=5.0)
    assert figures["sessions_without_a_later_part"] == 1 and figures["sessions_affected"] == 0


def test_a_session_is_settled_only_when_it_worked_again_after_its_last_interruption():
    slot = realtime_slot(0, [1.0, 2.0, 3.0])
    slot.tally.close_times = [2.5]
    assert slot.settled(deadline=100.0)
    slot.interruptions = [3.5]
    assert not slot.settled(deadline=100.0)
    assert slot.settled(deadline=10.0), "an interruption in the last seconds may stay open"
    canvas = Slot("canvas", 0, connected_at=[0.0, 4.0], interruptions=[3.0])
    assert canvas.settled(deadline=100.0)
    canvas.interruptions.append(5.0)
    assert not canvas.settled(deadline=100.0)


def test_memory_is_judged_per_process_after_its_own_warm_up():
    samples = [
        Sample(0, {"triton-a": (1, 800.0)}, 0, 0),
        Sample(60, {"triton-a": (1, 900.0)}, 0, 0),
        Sample(90, {"triton-a": None}, 0, 0),  # killed
        Sample(100, {"triton-a": (2, 500.0)}, 0, 0),  # loading again: no growth of the first process
        Sample(170, {"triton-a": (2, 910.0)}, 0, 0),
        Sample(200, {"triton-a": (2, 915.0)}, 0, 0),
    ]
    flat = memory_summary(samples, warm_up_s=50)["triton-a"]
    assert flat["processes"] == 2 and flat["flat"] and flat["max"] == 915.0
    samples.append(Sample(260, {"triton-a": (2, 2000.0)}, 0, 0))
    assert not memory_summary(samples, warm_up_s=50)["triton-a"]["flat"]


def test_ports_are_distinct():
    ports = distinct_free_ports(9)
    assert len(set(ports)) == 9


def test_the_nginx_configuration_carries_the_documented_proxy_settings(tmp_path: Path):
    topology = Topology(tmp_path)
    config = topology._nginx_config()
    for setting in (
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_buffering off;",
        "proxy_read_timeout 3600s;",
        "proxy_send_timeout 3600s;",
        "client_max_body_size 16m;",
        "hash $frontend_key consistent;",
        "server_tokens off;",
        f"listen 127.0.0.1:{topology.https_port} ssl;",
    ):
        assert setting in config, setting
    for frontend in topology.frontends:
        assert f"server 127.0.0.1:{frontend.port} " in config


def test_the_local_proxy_and_the_kubernetes_ingress_agree(tmp_path: Path):
    ingress = yaml.safe_load((ROOT / "docker" / "k8s" / "ingress.yaml").read_text())
    nginx = {k.removeprefix("nginx.ingress.kubernetes.io/"): v for k, v in ingress["metadata"]["annotations"].items()}
    config = Topology(tmp_path)._nginx_config()
    assert f"proxy_read_timeout {nginx['proxy-read-timeout']}s;" in config
    assert f"proxy_send_timeout {nginx['proxy-send-timeout']}s;" in config
    assert f"client_max_body_size {nginx['proxy-body-size']};" in config
    assert f"proxy_buffering {nginx['proxy-buffering']};" in config
