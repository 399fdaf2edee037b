"""The YAML file, its environment overrides, and the messages for invalid values."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdconfig import ConfigError, load_settings
from sdconfig.loader import DEFAULT_CONFIG

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_shipped_files_are_valid() -> None:
    settings = load_settings(DEFAULT_CONFIG, env={})
    assert settings.realtime.performance.enable_similar_image_filter
    assert settings.realtime.performance.similar_image_filter_threshold == 0.98
    assert settings.realtime.performance.similar_image_filter_max_skip_frame == 10
    assert settings.realtime.performance.max_fps == 30
    assert not settings.canvas.performance.enable_similar_image_filter
    assert settings.canvas.performance.max_fps == 0
    assert settings.canvas.performance.jpeg_quality == 95
    load_settings(ROOT / "tests" / "config.test.yaml", env={})


def test_defaults_for_an_empty_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), env={})
    assert settings.server.port == 8000
    assert settings.realtime.pipeline.t_index_list == (32, 45)


def test_environment_overrides_single_keys(tmp_path: Path) -> None:
    env = {"SD__SERVER__PORT": "9100", "SD__TRITON__URLS": "[a:1, b:2]", "SD__REALTIME__PERFORMANCE__MAX_FPS": "12"}
    settings = load_settings(write(tmp_path, "server: {port: 8000}"), env=env)
    assert settings.server.port == 9100
    assert settings.triton.urls == ("a:1", "b:2")
    assert settings.realtime.performance.max_fps == 12


def test_a_partial_canvas_section_keeps_the_canvas_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "canvas: {pipeline: {guidance_scale: 2.0}}"), env={})
    canvas = settings.canvas.pipeline
    assert canvas.guidance_scale == 2.0
    assert (canvas.t_index_list, canvas.cfg_type, canvas.use_tiny_vae) == ((10, 20, 30, 40), "initialize", False)
    assert (canvas.max_batch, canvas.preferred_batches(), canvas.max_queue_delay_ms) == (4, (2, 4), 5.0)
    assert settings.realtime.pipeline.preferred_batches() == (4, 8)


def test_batching_across_sessions_auto_means_on_a_gpu_only(tmp_path: Path) -> None:
    auto = load_settings(write(tmp_path, ""), env={}).realtime.pipeline
    assert auto.batch_across_sessions == "auto"
    assert (auto.batches_across_sessions("cuda"), auto.batches_across_sessions("cpu")) == (True, False)
    for value, expected in (("true", True), ("false", False)):
        env = {"SD__REALTIME__PIPELINE__BATCH_ACROSS_SESSIONS": value}
        chosen = load_settings(write(tmp_path, ""), env=env).realtime.pipeline
        assert chosen.batches_across_sessions("cpu") is expected
        assert chosen.batches_across_sessions("cuda") is expected


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: 8123}")
    assert load_settings(env={"SD_CONFIG": str(path)}).server.port == 8123


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("server: {port: 0}", "server.port"),
        ("pipeline: {width: 500}", "pipeline.width"),
        (
            "realtime: {performance: {similar_image_filter_threshold: 1.5}}",
            "realtime.performance.similar_image_filter_threshold",
        ),
        ("realtime: {pipeline: {t_index_list: [40, 20]}}", "strictly increasing"),
        ("canvas: {performance: {enable_similar_image_filter: true}}", "canvas"),
        ("canvas: {pipeline: {cfg_type: full}}", "initialize"),
        ("server: {prot: 1}", "server.prot"),
        ("model: {acceleration: cuda}", "model.acceleration"),
        ("realtime: {pipeline: {batch_across_sessions: sometimes}}", "realtime.pipeline.batch_across_sessions"),
        ("realtime: {pipeline: {max_batch: 4, preferred_batch_sizes: [2, 8]}}", "preferred_batch_sizes"),
        ("triton: {cpu_threads_per_model: -1}", "triton.cpu_threads_per_model"),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(write(tmp_path, text), env={})


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_settings(tmp_path / "nope.yaml", env={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "server: [unclosed"), env={})
    with pytest.raises(ConfigError, match="SD__SERVER__PORT"):
        load_settings(write(tmp_path, "server: 3"), env={"SD__SERVER__PORT__X": "1"})
