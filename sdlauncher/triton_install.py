"""Where tritonserver and its Python backend live, and how run/backends is assembled from them.

Only file lookups: no Triton import, so the launcher can say what is missing before anything runs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BACKEND_NAME = "streamdiffusion"
"""The Python-based backend both variants declare (`backend: "streamdiffusion"`)."""
CONTAINER_ROOT = Path("/opt/tritonserver")
ENV_TRITONSERVER = "TRITONSERVER"
PYTHON_BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
STUB_NAME = "triton_python_backend_stub"
"""The process each Python-backend model instance runs in."""
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


def locate_for_this_python() -> TritonInstall:
    """tritonserver with the stub for the running Python, whose bin/ and libpython folder it needs.

    The stub then runs in this Python's environment, where the project is installed.
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    return locate_triton(
        os.environ,
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        python_bin=Path(sys.executable).parent,
        python_libdir=Path(libdir) if libdir else None,
        pytriton_dir=find_pytriton_dir(),
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
