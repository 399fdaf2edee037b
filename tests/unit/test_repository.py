"""Rendering the model repository and assembling the backend directory, without a server.

Rendered configs are parsed back with protobuf's text format into Triton's own ModelConfig
message, the same grammar tritonserver reads, so a quoting mistake fails here and not at load.
The checked-in configs' tensor blocks are held to sdcontract.tensors the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format
from hypothesis import given
from hypothesis import strategies as st
from tritonclient.grpc import model_config_pb2

from sdconfig import Settings, resolve_model_path
from sdcontract.facts import model_facts
from sdcontract.tensors import IMAGE_INPUT, INPUTS, OUTPUTS, TensorSpec
from sdlauncher.pbtxt import pbtxt_string, pbtxt_unquote, set_sequence_idle, string_parameter
from sdlauncher.repository import render_config, resolve_device, write_repository
from sdlauncher.server import Endpoints, server_command, server_environment
from sdlauncher.triton_install import (
    BACKEND_NAME,
    STUB_NAME,
    TritonInstall,
    TritonNotFound,
    assemble_backends,
    backend_layout,
    locate_triton,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "model_repository"
REALTIME = (SOURCE / "streamdiffusion_realtime" / "config.pbtxt").read_text()
CANVAS = (SOURCE / "streamdiffusion_canvas" / "config.pbtxt").read_text()


def parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def params(config: model_config_pb2.ModelConfig) -> dict[str, str]:
    return {key: value.string_value for key, value in config.parameters.items()}


def settings(**sections: object) -> Settings:
    return Settings.model_validate(sections)


# --------------------------------------------------------------------------- pbtxt strings


@given(st.text())
def test_any_string_survives_quoting_through_protobufs_own_parser(value: str) -> None:
    text = f'parameters {{ key: "k" value: {{ string_value: {pbtxt_string(value)} }} }}'
    assert params(parse(text))["k"] == value


@given(st.text())
def test_quoting_and_unquoting_are_inverse(value: str) -> None:
    assert pbtxt_unquote(pbtxt_string(value)) == value


def test_quotes_and_backslashes_are_escaped() -> None:
    assert pbtxt_string('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


def test_string_parameter_reads_the_variant() -> None:
    assert string_parameter(REALTIME, "variant") == "realtime"
    assert string_parameter(CANVAS, "variant") == "canvas"
    assert string_parameter(CANVAS, "absent") is None


# --------------------------------------------------------------------------- one config


def test_realtime_config_takes_its_facts_from_the_yaml(tmp_path: Path) -> None:
    config_file = tmp_path / "service.yaml"
    chosen = settings(realtime={"pipeline": {"sequence_idle_timeout_s": 4.5}}, pipeline={"width": 256})
    rendered = render_config(REALTIME, settings=chosen, config_file=config_file, gpu=False)
    config = parse(rendered.text)

    assert (rendered.name, rendered.variant) == ("streamdiffusion_realtime", "realtime")
    assert config.name == "streamdiffusion_realtime"
    assert config.sequence_batching.max_sequence_idle_microseconds == 4_500_000
    assert config.sequence_batching.oldest.max_candidate_sequences > 0
    assert [group.kind for group in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]
    values = params(config)
    assert values["config_file"] == str(config_file.resolve())
    assert values["variant"] == "realtime"
    facts = json.loads(values["model_facts"])
    assert facts == model_facts(chosen, "realtime", resolve_model_path(config_file, chosen.model.model_id))
    assert facts["info"]["width"] == 256


def test_canvas_config_has_no_sequence_batcher_and_runs_on_the_gpu_when_asked(tmp_path: Path) -> None:
    rendered = render_config(CANVAS, settings=settings(), config_file=tmp_path / "c.yaml", gpu=True)
    config = parse(rendered.text)
    assert not config.HasField("sequence_batching")
    assert config.dynamic_batching.max_queue_delay_microseconds > 0
    assert [group.kind for group in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    assert json.loads(params(config)["model_facts"])["info"]["mode"] == "canvas"


def test_a_config_path_with_quotes_backslashes_and_non_ascii_parses_back(tmp_path: Path) -> None:
    odd = tmp_path / 'dir "quoted" \\ back ünï' / "config.yaml"
    config = parse(render_config(REALTIME, settings=settings(), config_file=odd, gpu=False).text)
    assert params(config)["config_file"] == str(odd.resolve())


def test_rendering_twice_changes_nothing_more(tmp_path: Path) -> None:
    once = render_config(REALTIME, settings=settings(), config_file=tmp_path / "c.yaml", gpu=True).text
    twice = render_config(once, settings=settings(), config_file=tmp_path / "c.yaml", gpu=True).text
    assert twice == once


def test_models_take_the_names_the_yaml_gives_them(tmp_path: Path) -> None:
    chosen = settings(triton={"realtime_model": "live", "canvas_model": "paint"})
    assert parse(render_config(REALTIME, settings=chosen, config_file=tmp_path / "c", gpu=False).text).name == "live"
    assert parse(render_config(CANVAS, settings=chosen, config_file=tmp_path / "c", gpu=False).text).name == "paint"


def test_a_missing_idle_time_is_added_inside_the_sequence_batcher() -> None:
    text = 'name: "m"\nsequence_batching {\n  oldest { max_candidate_sequences: 4 }\n}\n'
    config = parse(set_sequence_idle(text, 1234))
    assert config.sequence_batching.max_sequence_idle_microseconds == 1234
    assert set_sequence_idle('name: "m"\n', 1234) == 'name: "m"\n'


def test_a_config_without_a_variant_is_copied_untouched(tmp_path: Path) -> None:
    text = 'name: "other"\nbackend: "python"\n'
    rendered = render_config(text, settings=settings(), config_file=tmp_path / "c", gpu=True)
    assert (rendered.name, rendered.variant, rendered.text) == ("other", None, text)


@pytest.mark.parametrize(
    ("setting", "gpu", "device"),
    [("auto", True, "cuda"), ("auto", False, "cpu"), ("cpu", True, "cpu"), ("cuda", False, "cuda")],
)
def test_device_resolution(setting: str, gpu: bool, device: str) -> None:
    assert resolve_device(setting, gpu) == device


# --------------------------------------------------------------------------- the tensor contract


def triton_type(datatype: str) -> str:
    """config.pbtxt's data_type for one of Triton's wire datatypes (BYTES is TYPE_STRING there)."""
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


def contract_input(spec: TensorSpec) -> tuple[str, str, tuple[int, ...], bool]:
    """Every input but IMAGE is optional (sdcontract.tensors)."""
    return (spec.name, triton_type(spec.datatype), spec.dims, spec.name != IMAGE_INPUT)


@pytest.mark.parametrize("text", [REALTIME, CANVAS], ids=["realtime", "canvas"])
def test_the_configs_declare_the_tensors_of_the_contract(text: str) -> None:
    """The input and output blocks are written out in each config.pbtxt; sdcontract.tensors is their one source."""
    config = parse(text)
    inputs = [
        (tensor.name, model_config_pb2.DataType.Name(tensor.data_type), tuple(tensor.dims), tensor.optional)
        for tensor in config.input
    ]
    outputs = [
        (tensor.name, model_config_pb2.DataType.Name(tensor.data_type), tuple(tensor.dims)) for tensor in config.output
    ]
    assert sorted(inputs) == sorted(contract_input(spec) for spec in INPUTS)
    assert sorted(outputs) == sorted((spec.name, triton_type(spec.datatype), spec.dims) for spec in OUTPUTS)


# --------------------------------------------------------------------------- the whole repository


def test_write_repository_renders_every_model_with_its_version_folder(tmp_path: Path) -> None:
    dest = tmp_path / "run" / "model_repository"
    (dest / "stale").mkdir(parents=True)
    rendered = write_repository(SOURCE, dest, settings=settings(), config_file=ROOT / "config.yaml", gpu=False)

    assert sorted(model.name for model in rendered) == ["streamdiffusion_canvas", "streamdiffusion_realtime"]
    assert sorted(p.name for p in dest.iterdir()) == ["streamdiffusion_canvas", "streamdiffusion_realtime"]
    for model in rendered:
        assert (model.path / "1").is_dir()
        config = parse((model.path / "config.pbtxt").read_text())
        assert config.name == model.name
        assert config.backend == BACKEND_NAME
        assert config.runtime == "model.py"
        assert params(config)["variant"] == model.variant


# --------------------------------------------------------------------------- locating tritonserver


def _fake_triton(root: Path, *, stub_in_backend: bool, versions: tuple[str, ...] = ("3.11",)) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tritonserver").write_text("")
    backend = root / "backends" / "python"
    backend.mkdir(parents=True)
    (backend / "libtriton_python.so").write_text("lib")
    (backend / "triton_python_backend_utils.py").write_text("utils")
    if stub_in_backend:
        (backend / STUB_NAME).write_text("stub")
    for version in versions:
        (root / "python_backend_stubs" / version).mkdir(parents=True)
        (root / "python_backend_stubs" / version / STUB_NAME).write_text(f"stub {version}")
    return root / "bin" / "tritonserver"


PY = {"python_version": "3.11", "python_bin": Path("/venv/bin"), "python_libdir": Path("/py/lib")}


def test_the_wheel_layout_brings_its_libraries_and_the_stub_for_this_python(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    (site / "nvidia_pytriton.libs").mkdir(parents=True)
    _fake_triton(site / "pytriton" / "tritonserver", stub_in_backend=False, versions=("3.10", "3.11"))
    install = locate_triton({}, container_root=tmp_path / "none", pytriton_dir=site / "pytriton", **PY)

    assert install.stub == site / "pytriton" / "tritonserver" / "python_backend_stubs" / "3.11" / STUB_NAME
    assert install.lib_dirs == (site / "nvidia_pytriton.libs", Path("/py/lib"))
    assert install.bin_dirs == (Path("/venv/bin"),)


def test_the_container_is_preferred_to_the_wheel(tmp_path: Path) -> None:
    server = _fake_triton(tmp_path / "opt" / "tritonserver", stub_in_backend=True, versions=())
    wheel = tmp_path / "site" / "pytriton"
    _fake_triton(wheel / "tritonserver", stub_in_backend=False)
    install = locate_triton({}, container_root=tmp_path / "opt" / "tritonserver", pytriton_dir=wheel, **PY)
    assert install.server == server
    assert install.stub == tmp_path / "opt" / "tritonserver" / "backends" / "python" / STUB_NAME
    assert install.lib_dirs == ()


def test_tritonserver_env_wins(tmp_path: Path) -> None:
    server = _fake_triton(tmp_path / "custom", stub_in_backend=True, versions=())
    _fake_triton(tmp_path / "opt", stub_in_backend=True, versions=())
    install = locate_triton({"TRITONSERVER": str(server)}, container_root=tmp_path / "opt", **PY)
    assert install.server == server


def test_no_stub_for_this_python_is_named(tmp_path: Path) -> None:
    wheel = tmp_path / "pytriton"
    _fake_triton(wheel / "tritonserver", stub_in_backend=False, versions=("3.10",))
    with pytest.raises(TritonNotFound, match=r"no triton_python_backend_stub for Python 3\.11"):
        locate_triton({}, container_root=tmp_path / "none", pytriton_dir=wheel, **PY)


def test_nothing_installed_says_how_to_get_tritonserver(tmp_path: Path) -> None:
    with pytest.raises(TritonNotFound, match=r"scripts/setup\.sh"):
        locate_triton({}, container_root=tmp_path / "none", pytriton_dir=None, **PY)


# --------------------------------------------------------------------------- backend directory


def _install(tmp_path: Path) -> TritonInstall:
    server = _fake_triton(tmp_path / "triton", stub_in_backend=False)
    return locate_triton({"TRITONSERVER": str(server)}, **PY)


def test_the_backend_directory_copies_the_python_backend_and_links_the_model_code(tmp_path: Path) -> None:
    install = _install(tmp_path)
    source = tmp_path / "backends" / BACKEND_NAME
    source.mkdir(parents=True)
    (source / "model.py").write_text("# model")
    dest = tmp_path / "run" / "backends"
    assemble_backends(dest, backend_layout(install, source))
    assemble_backends(dest, backend_layout(install, source))  # a second launch replaces the first

    python = dest / "python"
    assert sorted(p.name for p in python.iterdir()) == sorted(
        ["libtriton_python.so", "triton_python_backend_utils.py", STUB_NAME]
    )
    assert not any(p.is_symlink() for p in python.iterdir())  # Triton refuses a library outside the directory
    assert (python / STUB_NAME).read_text() == "stub 3.11"
    assert (dest / BACKEND_NAME).is_symlink()
    assert (dest / BACKEND_NAME / "model.py").read_text() == "# model"


# --------------------------------------------------------------------------- the server process


def test_the_server_environment_finds_the_venv_the_libraries_and_the_packages(tmp_path: Path) -> None:
    install = _install(tmp_path)
    base = {"PATH": "/usr/bin", "PYTHONPATH": "/extra", "HOME": "/root"}
    env = server_environment(base, install, config_file=tmp_path / "c.yaml")
    assert env["SD_CONFIG"] == str((tmp_path / "c.yaml").resolve())
    assert env["PYTHONPATH"] == "/extra", "the packages come from the venv on PATH, not from PYTHONPATH"
    assert env["PATH"].split(os.pathsep) == ["/venv/bin", "/usr/bin"]
    assert env["HOME"] == "/root"


def test_the_stubs_python_imports_the_project_without_pythonpath(tmp_path: Path) -> None:
    """The stub runs in the environment of the first python3 on the PATH the launcher gives it: this one."""
    install = TritonInstall(
        server=tmp_path / "tritonserver",
        python_backend=tmp_path,
        stub=tmp_path / STUB_NAME,
        origin="a test",
        bin_dirs=(Path(sys.executable).parent,),
    )
    base = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env = server_environment(base, install, config_file=tmp_path / "c.yaml")
    python3 = shutil.which("python3", path=env["PATH"])
    assert python3 is not None
    result = subprocess.run(
        [python3, "-c", "import sdbackend, sdconfig, sdcontract.facts, sdcontract.tensors"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_command_loads_exactly_the_two_models_on_the_chosen_ports(tmp_path: Path) -> None:
    install = _install(tmp_path)
    command = server_command(
        install,
        model_repository=Path("/r/model_repository"),
        backend_directory=Path("/r/backends"),
        endpoints=Endpoints(host="0.0.0.0", grpc_port=1, http_port=2, metrics_port=3),
        models=["a", "b"],
        admin_key="k",
    )
    assert command[0] == str(install.server)
    for flag in (
        "--model-control-mode=explicit",
        "--load-model=a",
        "--load-model=b",
        "--grpc-port=1",
        "--http-port=2",
        "--metrics-port=3",
        "--grpc-address=0.0.0.0",
        "--backend-directory=/r/backends",
        "--model-repository=/r/model_repository",
    ):
        assert flag in command


def test_a_wildcard_bind_address_is_reached_through_loopback() -> None:
    assert Endpoints(host="0.0.0.0", grpc_port=1, http_port=2, metrics_port=3).url(1) == "127.0.0.1:1"
    assert Endpoints(host="10.0.0.5", grpc_port=1, http_port=2, metrics_port=3).url(2) == "10.0.0.5:2"


def test_batch_sizes_and_candidates_follow_the_yaml(tmp_path: Path) -> None:
    chosen = Settings.model_validate(
        {"realtime": {"pipeline": {"max_batch": 3, "max_sequences": 5}}, "canvas": {"pipeline": {"max_batch": 2}}}
    )
    realtime = parse(render_config(REALTIME, settings=chosen, config_file=tmp_path / "c", gpu=False).text)
    canvas = parse(render_config(CANVAS, settings=chosen, config_file=tmp_path / "c", gpu=False).text)
    assert realtime.max_batch_size == 3
    assert realtime.sequence_batching.oldest.max_candidate_sequences == 5
    assert canvas.max_batch_size == 2
    # preferred sizes follow max_batch unless given: half of it and all of it
    assert list(realtime.sequence_batching.oldest.preferred_batch_size) == [1, 3]
    assert list(canvas.dynamic_batching.preferred_batch_size) == [1, 2]


def test_queue_delays_and_preferred_batches_follow_the_yaml(tmp_path: Path) -> None:
    chosen = Settings.model_validate(
        {
            "realtime": {"pipeline": {"preferred_batch_sizes": [2, 6], "max_queue_delay_ms": 7.5}},
            "canvas": {"pipeline": {"max_queue_delay_ms": 0}},
        }
    )
    realtime = parse(render_config(REALTIME, settings=chosen, config_file=tmp_path / "c", gpu=False).text)
    canvas = parse(render_config(CANVAS, settings=chosen, config_file=tmp_path / "c", gpu=False).text)
    assert list(realtime.sequence_batching.oldest.preferred_batch_size) == [2, 6]
    assert realtime.sequence_batching.oldest.max_queue_delay_microseconds == 7500
    assert list(canvas.dynamic_batching.preferred_batch_size) == [2, 4]
    assert canvas.dynamic_batching.max_queue_delay_microseconds == 0
