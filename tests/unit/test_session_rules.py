"""Who may act for a session (session_binding.py), the registry that applies it, and the Host rules."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
import yaml

from frontends.allowed_hosts import host_allowed, host_name
from frontends.mjpeg import StreamHub
from frontends.protocol import CloseCode
from frontends.registry import SessionRegistry
from frontends.session_binding import Binding, may_act_for, new_session_key
from sdconfig import ConfigError, load_settings

OWNER = "198.51.100.1"
STRANGER = "203.0.113.9"


def test_session_keys_are_random_and_url_safe():
    keys = {new_session_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(len(key) == 32 and key.replace("-", "").replace("_", "").isalnum() for key in keys)


@pytest.mark.parametrize(
    ("key", "address", "fallback", "allowed"),
    [
        ("right", STRANGER, True, True),
        ("right", STRANGER, False, True),
        ("wrong", OWNER, True, False),  # a wrong key is not rescued by the address
        (None, OWNER, True, True),
        (None, OWNER, False, False),
        (None, STRANGER, True, False),
    ],
)
def test_a_session_is_acted_for_with_its_key_or_from_its_address(key, address, fallback, allowed):
    binding = Binding("right", OWNER)
    assert may_act_for(binding, key, address, fallback) is allowed


def test_no_session_is_never_acted_for():
    assert not may_act_for(None, None, OWNER, True)
    assert not may_act_for(None, "anything", OWNER, True)


@dataclass(eq=False)
class FakeSession:
    """A registered session as far as the registry sees one (it calls nothing else)."""

    mode: str
    user_id: str
    binding: Binding
    hub: StreamHub = field(default_factory=StreamHub)

    def close_soon(self, code: CloseCode, reason: str) -> asyncio.Task[None]:
        raise AssertionError("the registry never closes sessions itself")


def test_the_registry_hands_a_hub_only_to_the_key_or_the_address_and_replaces_likewise():
    registry = SessionRegistry(8, "replace", address_fallback=True)
    owner = FakeSession("canvas", "alice", Binding("k" * 32, OWNER))
    assert registry.admit(owner).outcome == "admitted"
    assert registry.hub("canvas", "alice", None, STRANGER) is None
    assert registry.hub("canvas", "alice", "k" * 32, STRANGER) is owner.hub
    assert registry.hub("canvas", "alice", None, OWNER) is owner.hub
    assert registry.hub("canvas", "nobody", None, OWNER) is None
    intruder = FakeSession("canvas", "alice", Binding("i" * 32, STRANGER))
    assert registry.admit(intruder).outcome == "not_yours"
    assert registry.hub("canvas", "alice", "k" * 32, STRANGER) is owner.hub, "the owner keeps its place"
    successor = FakeSession("canvas", "alice", Binding("s" * 32, STRANGER))
    admission = registry.admit(successor, key="k" * 32)
    assert admission.outcome == "admitted" and admission.replaced is owner
    assert registry.hub("canvas", "alice", "k" * 32, STRANGER) is None, "the old key opens nothing now"


@pytest.mark.parametrize(
    ("header", "name"),
    [("Example.COM:8000", "example.com"), ("[::1]:8000", "::1"), ("[::1]", "::1"), ("host.", "host"), ("a", "a")],
)
def test_host_names_lose_port_brackets_case_and_final_dot(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize(
    ("name", "allowed", "served"),
    [
        ("localhost", (), True),
        ("app.localhost", (), True),
        ("127.0.0.1", (), True),
        ("127.9.9.9", (), True),
        ("::1", (), True),
        ("evil.example", (), False),
        ("10.0.0.5", (), False),
        ("sd.example.com", ("sd.example.com",), True),
        ("x.sd.example.com", ("sd.example.com",), False),
        ("x.example.com", (".example.com",), True),
        ("example.com", (".example.com",), True),
        ("badexample.com", (".example.com",), False),
        ("localhost.evil.example", (), False),
        ("anything", ("*",), True),
    ],
)
def test_served_hosts_are_loopback_and_the_configured_ones(name, allowed, served):
    assert host_allowed(name, allowed) is served


@pytest.mark.parametrize("entry", ["https://sd.example.com", "sd.example.com:8000", "sd example", "*.example.com"])
def test_an_allowed_host_that_is_no_host_name_fails_at_start_naming_the_key(tmp_path, entry):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"server": {"security": {"allowed_hosts": [entry]}}}))
    with pytest.raises(ConfigError, match="allowed_hosts"):
        load_settings(path, env={})
