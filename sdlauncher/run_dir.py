"""run/: the backend directory and the rendered model repository one launch gives tritonserver.

Both are made afresh from the checkout at every launch, so a changed YAML, tritonserver or
machine never meets a stale copy. The checkout is found from this package's own place in it
(the project is installed editable).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from sdconfig import MODES, Settings
from sdlauncher.report import LaunchError
from sdlauncher.repository import resolve_device, write_repository
from sdlauncher.triton_install import (
    BACKEND_NAME,
    TritonInstall,
    assemble_backends,
    backend_layout,
    locate_for_this_python,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def gpu_present() -> bool:
    """Whether `nvidia-smi -L` lists a GPU; torch is not imported here (it is slow and maybe absent)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=15, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.startswith("GPU ") for line in out.splitlines())


def prepare(settings: Settings, config_file: Path, run_dir: Path) -> tuple[TritonInstall, Path, Path, str]:
    """Locate tritonserver, assemble run/backends and render run/model_repository."""
    install = locate_for_this_python()
    backend_source = REPO_ROOT / "backends" / BACKEND_NAME
    if not (backend_source / "model.py").is_file():
        raise LaunchError(f"{backend_source / 'model.py'} is missing: the repository checkout is incomplete")
    backends = assemble_backends(run_dir / "backends", backend_layout(install, backend_source))
    device = resolve_device(settings.model.device, gpu_present() if settings.model.device == "auto" else False)
    repository = run_dir / "model_repository"
    rendered = write_repository(
        REPO_ROOT / "model_repository", repository, settings=settings, config_file=config_file, gpu=device == "cuda"
    )
    names = {model.name for model in rendered}
    missing = [settings.model_name(mode) for mode in MODES if settings.model_name(mode) not in names]
    if missing:
        raise LaunchError(
            f"{REPO_ROOT / 'model_repository'} has no model for {missing}: each config.pbtxt names its variant in "
            f'parameters {{ key: "variant" ... }}'
        )
    return install, backends, repository, device
