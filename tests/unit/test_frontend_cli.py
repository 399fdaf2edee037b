"""`python -m frontends`: command-line overrides are validated like the file; bad input exits at once."""

from pathlib import Path

import pytest

from frontends.__main__ import effective_settings, main, parse_args
from sdconfig import ConfigError

CONFIG = str(Path(__file__).resolve().parents[2] / "config.yaml")


def test_overrides_replace_the_server_section():
    settings = effective_settings(
        parse_args(["--config", CONFIG, "--modes", "canvas", "--port", "9123", "--host", "0.0.0.0"])
    )
    assert settings.server.modes == ("canvas",)
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 9123)


def test_no_overrides_keep_the_file():
    settings = effective_settings(parse_args(["--config", CONFIG]))
    assert settings.server.modes == ("realtime", "canvas")


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--modes", "realtime,sketch"], "server.modes"),
        (["--port", "70000"], "server.port"),
    ],
)
def test_bad_overrides_name_the_key(argv, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        effective_settings(parse_args(["--config", CONFIG, *argv]))


def test_invalid_config_file_exits_2_naming_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  max_sessions_per_mode: 0\n")
    assert main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "server.max_sessions_per_mode" in err


def test_missing_config_file_exits_2(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nowhere.yaml")]) == 2
    assert "no such configuration file" in capsys.readouterr().err
