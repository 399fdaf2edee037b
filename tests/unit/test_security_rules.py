"""The pure rules behind the service's defences: origins, per-address counting, the security
settings' validation, Triton bound to loopback, and the sequence-idle agreement check."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from frontends.client_limits import ClientLimits
from frontends.security import normalize_origin, same_host
from frontends.timeouts import idle_mismatch
from sdconfig import ConfigError, Settings, load_settings
from sdlauncher.cli import endpoints_from, parse_args
from sdlauncher.server import server_command
from sdlauncher.triton_install import TritonInstall

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("origin", "normalized"),
    [
        ("http://Example.COM", "http://example.com"),
        ("https://example.com:443", "https://example.com"),
        ("http://example.com:80/", "http://example.com"),
        ("http://example.com:8000", "http://example.com:8000"),
        ("https://[::1]:8443", "https://[::1]:8443"),
        ("null", None),
        ("file://", None),
        ("http://example.com/page", None),
        ("http://[::1", None),
        ("http://example.com:99999", None),
        ("javascript:alert(1)", None),
    ],
)
def test_origins_are_normalized_or_refused(origin, normalized):
    assert normalize_origin(origin) == normalized


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("https://example.com", "example.com", True),
        ("https://example.com", "example.com:443", True),
        ("http://example.com", "EXAMPLE.com:80", True),
        ("https://example.com", "example.com:8443", False),
        ("http://localhost:8000", "127.0.0.1:8000", False),
        ("http://example.com", "", False),
        ("http://example.com.evil.net", "example.com", False),
    ],
)
def test_same_host_compares_host_and_port(origin, host, same):
    assert same_host(origin, host) is same


def test_client_limits_count_per_address_and_forget_idle_ones():
    limits = ClientLimits(max_open=2, messages_per_second=5, clock=lambda: 0.0)
    first = limits.acquire("198.51.100.1", "sessions")
    second = limits.acquire("198.51.100.1", "sessions")
    assert first is not None and first is second, "an address's sessions share one message budget"
    assert limits.acquire("198.51.100.1", "sessions") is None
    assert limits.acquire("198.51.100.1", "streams") is not None, "streams are counted apart"
    assert limits.acquire("198.51.100.2", "sessions") is not None, "another address has its own count"
    for _ in range(5):
        assert first.allow()
    assert not first.allow()
    limits.release("198.51.100.1", "sessions")
    assert limits.acquire("198.51.100.1", "sessions") is not None
    for address, kind, times in (("198.51.100.1", "sessions", 2), ("198.51.100.1", "streams", 1)):
        for _ in range(times):
            limits.release(address, kind)
    limits.release("198.51.100.2", "sessions")
    assert len(limits) == 0, "nothing is kept for addresses with nothing open"


def security(**values: object) -> dict:
    return {"server": {"security": values}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (security(access_token="short"), "access_token must be 16 to 256"),
        (security(access_token="has spaces in it, sixteen+"), "access_token must be"),
        (security(trusted_proxies=["proxy.local"]), "trusted_proxies"),
        (security(allowed_origins=["example.com"]), "allowed_origins"),
        (security(allowed_origins=["https://example.com/app"]), "allowed_origins"),
        ({"server": {"tls_cert": "cert.pem"}}, "tls_cert and tls_key go together"),
        (security(max_sessions_per_client=0), "max_sessions_per_client"),
    ],
)
def test_bad_security_settings_fail_at_start_naming_the_key(tmp_path, data, message):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env={})


def test_security_defaults_are_the_safe_ones():
    security = Settings().server.security
    assert security.access_token is None  # opt-in: the pages then need ?token=
    assert security.allowed_origins == ()  # only the server's own pages open sessions
    assert security.trusted_proxies == ()  # X-Forwarded-For is not believed
    assert "frame-ancestors 'none'" in security.content_security_policy
    assert "unsafe" not in security.content_security_policy
    assert "token" not in repr(Settings(server={"security": {"access_token": "a" * 32}}).server.security).lower()


def test_the_repository_config_keeps_triton_on_loopback():
    settings = load_settings(ROOT / "config.yaml", env={})
    assert settings.triton.host == "127.0.0.1"
    assert Settings().triton.host == "127.0.0.1"


def test_the_rendered_tritonserver_command_binds_every_endpoint_to_loopback():
    settings = load_settings(ROOT / "config.yaml", env={})
    args = parse_args([])
    endpoints = endpoints_from(settings, args)
    install = TritonInstall(
        server=Path("/opt/tritonserver/bin/tritonserver"),
        python_backend=Path("/opt/tritonserver/backends/python"),
        stub=Path("/opt/tritonserver/backends/python/triton_python_backend_stub"),
        origin="a container",
    )
    command = server_command(
        install,
        model_repository=Path("/tmp/repository"),
        backend_directory=Path("/tmp/backends"),
        endpoints=endpoints,
        models=["streamdiffusion_realtime", "streamdiffusion_canvas"],
        admin_key="k",
    )
    for flag in ("--grpc-address", "--http-address", "--metrics-address"):
        assert f"{flag}=127.0.0.1" in command
    assert "--model-control-mode=explicit" in command


def test_sequence_idle_mismatch_is_named_with_the_key():
    settings = Settings(realtime={"pipeline": {"sequence_idle_timeout_s": 60}})
    same = {"sequence_batching": {"max_sequence_idle_microseconds": "60000000"}}
    shorter = {"sequence_batching": {"max_sequence_idle_microseconds": "4000000"}}
    assert idle_mismatch(settings, same) is None
    assert idle_mismatch(settings, {}) is None
    warning = idle_mismatch(settings, shorter)
    assert warning is not None and "sequence_idle_timeout_s: 60" in warning and "after 4 s" in warning
