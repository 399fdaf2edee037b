"""Where tritonserver lives, how its backend directory is assembled, how the model repository is rendered.

The checked-in `model_repository/` holds what does not depend on the machine or the YAML file
(batching, tensors, the variant). What does depend on them is filled in here, so each fact keeps
one home: the sequence idle time, the instance kind (CPU or GPU), the absolute path of the YAML in
use, and the model facts a client reads back through `get_model_config`.

No torch and no Triton imports: the launcher runs this before any model code exists in memory,
and the unit tests call it directly. File-system work is kept to the few functions whose names
say so (`locate_triton`, `assemble_backends`, `write_repository`); the rest are pure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdconfig import MODES, Mode, Settings, resolve_model_path
from sdcontract.facts import model_facts

BACKEND_NAME = "streamdiffusion"
"""The Python-based backend both variants declare (`backend: "streamdiffusion"`)."""
CONTAINER_ROOT = Path("/opt/tritonserver")
ENV_TRITONSERVER = "TRITONSERVER"
PYTHON_BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
STUB_NAME = "triton_python_backend_stub"
WHEEL_LIBS = "nvidia_pytriton.libs"


class TritonNotFound(RuntimeError):
    """No usable tritonserver: the message says where it looked and how to provide one."""


@dataclass(frozen=True)
class TritonInstall:
    """A tritonserver binary plus the files its Python backend needs, and the environment it wants."""

    server: Path
    python_backend: Path
    """Folder holding libtriton_python.so and triton_python_backend_utils.py."""
    stub: Path
    """triton_python_backend_stub built for the Python version the models run under."""
    origin: str
    lib_dirs: tuple[Path, ...] = ()
    """Prepended to LD_LIBRARY_PATH: the wheel's bundled libraries and libpython's folder."""
    bin_dirs: tuple[Path, ...] = ()
    """Prepended to PATH: the stub picks its Python environment from the first `python3` there."""


# --------------------------------------------------------------------------- locating tritonserver


def find_pytriton_dir() -> Path | None:
    """The installed `pytriton` package folder, found without importing its Python API.

    `find_spec` on a top-level name reads the import system's finders only; pytriton's own
    `__init__` (and its numpy 2 requirement) never runs.
    """
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _stub_candidates(root: Path, python_backend: Path, python_version: str) -> list[Path]:
    return [python_backend / STUB_NAME, root / "python_backend_stubs" / python_version / STUB_NAME]


def install_from_root(
    server: Path,
    *,
    origin: str,
    python_version: str,
    python_bin: Path,
    python_libdir: Path | None,
) -> TritonInstall:
    """Describe the tritonserver at `server` (`<root>/bin/tritonserver`), or say what is missing.

    Two layouts are known: the NVIDIA container (`<root>/backends/python` holds the stub too) and
    the nvidia-pytriton wheel (one stub per Python version in `<root>/python_backend_stubs/3.X/`,
    shared libraries in `nvidia_pytriton.libs/` beside the `pytriton` package).
    """
    if not server.is_file():
        raise TritonNotFound(f"{server}: no tritonserver binary there ({origin})")
    root = server.parent.parent
    python_backend = root / "backends" / "python"
    missing = [name for name in PYTHON_BACKEND_FILES if not (python_backend / name).is_file()]
    if missing:
        raise TritonNotFound(f"{python_backend}: the Python backend lacks {', '.join(missing)} ({origin})")
    stub = next((p for p in _stub_candidates(root, python_backend, python_version) if p.is_file()), None)
    if stub is None:
        raise TritonNotFound(
            f"{root}: no {STUB_NAME} for Python {python_version} ({origin}); run the launcher with a Python "
            f"version that tritonserver ships a stub for"
        )
    lib_dirs: list[Path] = []
    wheel_libs = root.parent.parent / WHEEL_LIBS
    if wheel_libs.is_dir():
        lib_dirs.append(wheel_libs)
        if python_libdir is not None:
            lib_dirs.append(python_libdir)
    return TritonInstall(
        server=server,
        python_backend=python_backend,
        stub=stub,
        origin=origin,
        lib_dirs=tuple(lib_dirs),
        bin_dirs=(python_bin,),
    )


def locate_triton(
    env: Mapping[str, str],
    *,
    python_version: str,
    python_bin: Path,
    python_libdir: Path | None,
    container_root: Path = CONTAINER_ROOT,
    pytriton_dir: Path | None = None,
) -> TritonInstall:
    """Pick tritonserver: `$TRITONSERVER`, else the container's, else the nvidia-pytriton wheel's."""
    common = {"python_version": python_version, "python_bin": python_bin, "python_libdir": python_libdir}
    explicit = env.get(ENV_TRITONSERVER)
    if explicit:
        return install_from_root(Path(explicit), origin=f"${ENV_TRITONSERVER}", **common)
    container_server = container_root / "bin" / "tritonserver"
    if container_server.is_file():
        return install_from_root(container_server, origin="the tritonserver container", **common)
    if pytriton_dir is not None:
        wheel_server = pytriton_dir / "tritonserver" / "bin" / "tritonserver"
        return install_from_root(wheel_server, origin="the nvidia-pytriton wheel", **common)
    raise TritonNotFound(
        f"no tritonserver: not at {container_server}, ${ENV_TRITONSERVER} is unset and the nvidia-pytriton wheel "
        f"is not installed; run scripts/setup.sh (it installs nvidia-pytriton==0.7.0) or set "
        f"{ENV_TRITONSERVER}=/path/to/bin/tritonserver"
    )


# --------------------------------------------------------------------------- backend directory


@dataclass(frozen=True)
class BackendLayout:
    """What the backend directory holds, by path relative to it.

    The Python backend's files are copied: Triton resolves the backend library's real path and
    refuses one that lies outside the backend directory. The shared model code is linked, so an
    edit to it needs no new assembly.
    """

    copies: dict[str, Path]
    links: dict[str, Path]


def backend_layout(install: TritonInstall, backend_source: Path) -> BackendLayout:
    copies = {f"python/{name}": install.python_backend / name for name in PYTHON_BACKEND_FILES}
    copies[f"python/{STUB_NAME}"] = install.stub
    return BackendLayout(copies=copies, links={BACKEND_NAME: backend_source})


def assemble_backends(dest: Path, layout: BackendLayout) -> Path:
    """Recreate `dest` from `layout`, so a changed tritonserver or backend is always picked up."""
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.exists():
        shutil.rmtree(dest)
    for relative, source in layout.copies.items():
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    for relative, source in layout.links.items():
        link = dest / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source.resolve(), target_is_directory=source.is_dir())
    return dest


# --------------------------------------------------------------------------- pbtxt text

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_STRING = r'"(?:[^"\\\n]|\\.)*"'
_UNESCAPE = re.compile(rb"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)")
_SIMPLE_UNESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b", b"f": b"\f", b"v": b"\v"}


def pbtxt_string(value: str) -> str:
    """`value` as a protobuf text-format string literal (UTF-8 kept, control characters escaped)."""
    parts = []
    for ch in value:
        if ch in _ESCAPES:
            parts.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            parts.append(f"\\{ord(ch):03o}")
        else:
            parts.append(ch)
    return '"' + "".join(parts) + '"'


def _unescape_match(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    if code[:1] == b"x" and len(code) > 1:
        return bytes([int(code[1:], 16)])
    if code[:1].isdigit():
        return bytes([int(code, 8) & 0xFF])
    return _SIMPLE_UNESCAPES.get(code, code)


def pbtxt_unquote(literal: str) -> str:
    """The value of a double-quoted text-format string literal."""
    if len(literal) < 2 or literal[0] != '"' or literal[-1] != '"':
        raise ValueError(f"not a quoted string: {literal!r}")
    return _UNESCAPE.sub(_unescape_match, literal[1:-1].encode("utf-8")).decode("utf-8")


def _parameter_pattern(key: str) -> re.Pattern[str]:
    return re.compile(
        r"(parameters\s*(?::\s*)?\{\s*key\s*:\s*\""
        + re.escape(key)
        + r"\"\s*value\s*:?\s*\{\s*string_value\s*:\s*)"
        + "("
        + _STRING
        + ")"
    )


def string_parameter(text: str, key: str) -> str | None:
    """The string value of model parameter `key` in a config.pbtxt, or None."""
    match = _parameter_pattern(key).search(text)
    return pbtxt_unquote(match.group(2)) if match else None


def set_string_parameter(text: str, key: str, value: str) -> str:
    """Replace parameter `key`'s value, or append the parameter where the config has none."""
    pattern = _parameter_pattern(key)
    literal = pbtxt_string(value)
    if pattern.search(text):
        return pattern.sub(lambda m: m.group(1) + literal, text, count=1)
    tail = "" if text.endswith("\n") or not text else "\n"
    return f'{text}{tail}parameters {{ key: "{key}" value: {{ string_value: {literal} }} }}\n'


_IDLE = re.compile(r"max_sequence_idle_microseconds\s*:\s*\d+")
_SEQUENCE_BATCHING = re.compile(r"sequence_batching\s*\{")
_KIND = re.compile(r"kind\s*:\s*KIND_(?:CPU|GPU)\b")
_TOP_LEVEL_NAME = re.compile(r"^name\s*:\s*(" + _STRING + ")", re.MULTILINE)


def set_sequence_idle(text: str, microseconds: int) -> str:
    """Set the sequence batcher's idle time; a config without a sequence batcher is left alone."""
    field = f"max_sequence_idle_microseconds: {microseconds}"
    if _IDLE.search(text):
        return _IDLE.sub(field, text)
    match = _SEQUENCE_BATCHING.search(text)
    if match is None:
        return text
    return f"{text[: match.end()]}\n  {field}{text[match.end() :]}"


_MAX_BATCH = re.compile(r"^max_batch_size\s*:\s*\d+", re.MULTILINE)
_CANDIDATES = re.compile(r"max_candidate_sequences\s*:\s*\d+")


def set_max_batch(text: str, max_batch: int) -> str:
    """The top-level max_batch_size: how many requests Triton may hand one execute() call."""
    return _MAX_BATCH.sub(f"max_batch_size: {max_batch}", text, count=1)


_QUEUE_DELAY = re.compile(r"max_queue_delay_microseconds\s*:\s*\d+")
_PREFERRED = re.compile(r"preferred_batch_size\s*:\s*\[[^\]]*\]")


def set_batch_waiting(text: str, preferred: Sequence[int], queue_delay_ms: float) -> str:
    """The batcher's preferred batch sizes and queue delay (dynamic or sequence batcher, whichever is there)."""
    text = _QUEUE_DELAY.sub(f"max_queue_delay_microseconds: {round(queue_delay_ms * 1000)}", text)
    return _PREFERRED.sub(f"preferred_batch_size: [ {', '.join(str(size) for size in preferred)} ]", text)


def set_candidate_sequences(text: str, max_sequences: int) -> str:
    """The oldest strategy's candidate sequences follow the sequences one instance may hold."""
    return _CANDIDATES.sub(f"max_candidate_sequences: {max_sequences}", text)


def set_instance_kind(text: str, gpu: bool) -> str:
    """KIND_GPU where the model runs on CUDA, KIND_CPU where it does not (KIND_AUTO/MODEL untouched)."""
    return _KIND.sub("kind: KIND_GPU" if gpu else "kind: KIND_CPU", text)


def set_model_name(text: str, name: str) -> str:
    """The top-level `name:` (written at the start of a line) must equal the model's folder name."""
    literal = pbtxt_string(name)
    if _TOP_LEVEL_NAME.search(text):
        return _TOP_LEVEL_NAME.sub(lambda _m: f"name: {literal}", text, count=1)
    return f"name: {literal}\n{text}"


# --------------------------------------------------------------------------- rendering


def resolve_device(setting: str, gpu_present: bool) -> str:
    """`cuda` or `cpu`: `auto` follows whether the machine lists a GPU."""
    if setting == "auto":
        return "cuda" if gpu_present else "cpu"
    return setting


def sequence_idle_microseconds(settings: Settings) -> int:
    return round(settings.realtime.pipeline.sequence_idle_timeout_s * 1_000_000)


def model_variant(text: str) -> Mode | None:
    """The `variant` parameter where it names a known mode; other models are copied untouched."""
    variant = string_parameter(text, "variant")
    return next((mode for mode in MODES if mode == variant), None)


@dataclass(frozen=True)
class RenderedConfig:
    name: str
    variant: Mode | None
    text: str


def render_config(text: str, *, settings: Settings, config_file: Path, gpu: bool) -> RenderedConfig:
    """One model's config.pbtxt with the machine- and YAML-dependent facts filled in."""
    variant = model_variant(text)
    if variant is None:
        name_match = _TOP_LEVEL_NAME.search(text)
        name = pbtxt_unquote(name_match.group(1)) if name_match else ""
        return RenderedConfig(name=name, variant=None, text=text)
    config_file = config_file.resolve()
    model_path = resolve_model_path(config_file, settings.model.model_id)
    facts: dict[str, Any] = model_facts(settings, variant, model_path)
    name = settings.model_name(variant)
    out = set_model_name(text, name)
    out = set_sequence_idle(out, sequence_idle_microseconds(settings))
    pipeline = settings.variant(variant)
    out = set_max_batch(out, pipeline.max_batch)
    out = set_batch_waiting(out, pipeline.preferred_batches(), pipeline.max_queue_delay_ms)
    out = set_candidate_sequences(out, pipeline.max_sequences)
    out = set_instance_kind(out, gpu)
    out = set_string_parameter(out, "config_file", str(config_file))
    out = set_string_parameter(out, "model_facts", json.dumps(facts))
    return RenderedConfig(name=name, variant=variant, text=out)


@dataclass(frozen=True)
class RenderedModel:
    name: str
    variant: Mode | None
    path: Path


def write_repository(
    source: Path, dest: Path, *, settings: Settings, config_file: Path, gpu: bool
) -> list[RenderedModel]:
    """Recreate `dest` from `source`: each model's rendered config.pbtxt plus its version folders.

    A variant model's folder takes the name the YAML gives it (`triton.realtime_model`,
    `triton.canvas_model`), since Triton requires the folder and the config's name to agree.
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    rendered: list[RenderedModel] = []
    for model_dir in sorted(p for p in source.iterdir() if (p / "config.pbtxt").is_file()):
        config = render_config(
            (model_dir / "config.pbtxt").read_text(encoding="utf-8"),
            settings=settings,
            config_file=config_file,
            gpu=gpu,
        )
        folder = dest / (config.name if config.variant else model_dir.name)
        if folder.exists():
            raise ValueError(f"{model_dir}: two models render to the same name {folder.name!r}")
        folder.mkdir()
        (folder / "config.pbtxt").write_text(config.text, encoding="utf-8")
        for version in sorted(p for p in model_dir.iterdir() if p.is_dir()):
            shutil.copytree(version, folder / version.name)
        rendered.append(RenderedModel(name=folder.name, variant=config.variant, path=folder))
    return rendered


# --------------------------------------------------------------------------- the server process


@dataclass(frozen=True)
class Endpoints:
    host: str
    grpc_port: int
    http_port: int
    metrics_port: int

    @property
    def client_host(self) -> str:
        """Where a client on this machine connects: a wildcard bind address is reached via loopback."""
        return "127.0.0.1" if self.host in ("", "0.0.0.0", "::", "[::]") else self.host

    def url(self, port: int) -> str:
        host = self.client_host
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def server_command(
    install: TritonInstall,
    *,
    model_repository: Path,
    backend_directory: Path,
    endpoints: Endpoints,
    models: Sequence[str],
    log_verbose: int = 0,
) -> list[str]:
    """tritonserver's argument list: explicit model control so only the named models load.

    `--exit-on-error=false` keeps the server up when a model fails to load, so the launcher can ask
    the repository index for that model's own reason before stopping it.
    """
    host = endpoints.host
    return [
        str(install.server),
        f"--model-repository={model_repository}",
        f"--backend-directory={backend_directory}",
        "--model-control-mode=explicit",
        *(f"--load-model={name}" for name in models),
        f"--grpc-address={host}",
        f"--grpc-port={endpoints.grpc_port}",
        f"--http-address={host}",
        f"--http-port={endpoints.http_port}",
        "--allow-metrics=true",
        f"--metrics-address={host}",
        f"--metrics-port={endpoints.metrics_port}",
        f"--log-verbose={log_verbose}",
        "--exit-on-error=false",
    ]


def _prepend(paths: Sequence[Path | str], existing: str | None) -> str:
    items = [str(p) for p in paths]
    if existing:
        items.append(existing)
    return os.pathsep.join(items)


def server_environment(
    base: Mapping[str, str], install: TritonInstall, *, repo_root: Path, config_file: Path
) -> dict[str, str]:
    """The environment tritonserver (and through it each model's stub) runs with."""
    env = dict(base)
    env["SD_CONFIG"] = str(config_file.resolve())
    env["PYTHONPATH"] = _prepend([repo_root, repo_root / "backends" / BACKEND_NAME], base.get("PYTHONPATH"))
    if install.bin_dirs:
        env["PATH"] = _prepend(install.bin_dirs, base.get("PATH"))
    if install.lib_dirs:
        env["LD_LIBRARY_PATH"] = _prepend(install.lib_dirs, base.get("LD_LIBRARY_PATH"))
    return env
