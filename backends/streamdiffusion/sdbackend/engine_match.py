"""Whether an engine folder fits the running configuration, and the error that says why none does.

Running a stale engine gives wrong pictures or crashes, and quietly falling back to PyTorch hides
a slow service, so a folder that does not fit is refused with every differing field named and the
commands that rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sdbackend.engine_manifest import (
    FORMAT,
    MANIFEST_FILE,
    MODEL_SUBFOLDERS,
    EngineKind,
    Manifest,
    ModelDims,
    Platform,
    Precision,
    folder_fingerprint,
    model_slug,
    read_manifest,
    resolve_engine_dir,
)
from sdbackend.engine_needs import ModeNeeds, mode_needs, precision_for
from sdconfig import Mode, Settings, resolve_model_path


class EngineMismatchError(RuntimeError):
    """No engine folder fits the configuration; the message names each differing field and how to rebuild."""


@dataclass(frozen=True)
class RuntimeNeeds:
    """What the running model requires of an engine folder."""

    model_id: str
    model_fingerprint: str | None
    tiny_vae_id: str | None
    tiny_vae_fingerprint: str | None
    precision: Precision
    platform: Platform
    mode: ModeNeeds
    engine_dir: Path
    dims: ModelDims | None = None


def runtime_needs(
    settings: Settings,
    config_file: Path,
    mode: Mode,
    platform: Platform,
    dims: ModelDims | None = None,
) -> RuntimeNeeds:
    """What the `mode` model, as configured, asks of an engine folder on this platform."""
    model = settings.model
    tiny_path = resolve_model_path(config_file, model.tiny_vae_id) if model.tiny_vae_id else None
    return RuntimeNeeds(
        model_id=model.model_id,
        model_fingerprint=folder_fingerprint(Path(resolve_model_path(config_file, model.model_id)), MODEL_SUBFOLDERS),
        tiny_vae_id=model.tiny_vae_id,
        tiny_vae_fingerprint=folder_fingerprint(Path(tiny_path)) if tiny_path else None,
        precision=precision_for(settings),
        platform=platform,
        mode=mode_needs(settings, mode),
        engine_dir=resolve_engine_dir(settings, config_file),
        dims=dims,
    )


@dataclass(frozen=True)
class Mismatch:
    field: str
    built: object
    needed: object

    def __str__(self) -> str:
        return f"{self.field}: engines have {self.built!r}, this configuration needs {self.needed!r}"


def mismatches(manifest: Manifest, needs: RuntimeNeeds, folder: Path | None = None) -> list[Mismatch]:
    """Every field in which `manifest` fails `needs`; empty when the engines fit.

    Identity fields must be equal; ranges must cover what the mode asks. With `folder`, the
    engine files must also be there.
    """
    found: list[Mismatch] = []

    def same(field: str, built: object, needed: object) -> None:
        if built != needed:
            found.append(Mismatch(field, built, needed))

    same("format", manifest.format, FORMAT)
    same("model_id", manifest.model_id, needs.model_id)
    if manifest.model_fingerprint and needs.model_fingerprint:
        same("model_fingerprint", manifest.model_fingerprint, needs.model_fingerprint)
    mode = needs.mode
    if mode.vae == "taesd":
        same("tiny_vae_id", manifest.tiny_vae_id, needs.tiny_vae_id)
        if manifest.tiny_vae_fingerprint and needs.tiny_vae_fingerprint:
            same("tiny_vae_fingerprint", manifest.tiny_vae_fingerprint, needs.tiny_vae_fingerprint)
    same("precision", manifest.precision, needs.precision)
    same("tensorrt_version", manifest.tensorrt_version, needs.platform.tensorrt_version)
    same("gpu.compute_capability", manifest.gpu.compute_capability, needs.platform.gpu.compute_capability)
    if needs.dims is not None:
        same("dims", manifest.dims.model_dump(), needs.dims.model_dump())
    if not manifest.resolution.covers(mode.height, mode.width):
        res = manifest.resolution
        found.append(Mismatch("resolution", f"{res.min}..{res.max}", f"{mode.width}x{mode.height}"))
    for kind, batch in mode.engine_batches().items():
        entry = manifest.engines.get(kind)
        if entry is None:
            found.append(Mismatch(f"engines.{kind}", "absent", f"present for {mode.mode}"))
            continue
        index = entry.profile_index(mode.mode)
        if index is None:
            modes = [p.mode for p in entry.profiles]
            found.append(Mismatch(f"engines.{kind}.profiles", modes, f"a {mode.mode} profile"))
        elif not entry.profiles[index].batch.covers(batch):
            found.append(
                Mismatch(f"engines.{kind}.{mode.mode}.batch", entry.profiles[index].batch.text(), batch.text())
            )
        if folder is not None and not (folder / entry.file).is_file():
            found.append(Mismatch(f"engines.{kind}.file", f"{entry.file} missing", "the file"))
    return found


def notes(manifest: Manifest, needs: RuntimeNeeds) -> list[str]:
    """Differences TensorRT tolerates but an operator should see in the log."""
    if manifest.gpu.name != needs.platform.gpu.name:
        return [
            f"engines were built on {manifest.gpu.name!r} and run on {needs.platform.gpu.name!r} "
            f"(same compute capability {manifest.gpu.compute_capability}); rebuild on this GPU for best speed"
        ]
    return []


@dataclass(frozen=True)
class EngineFolder:
    path: Path
    manifest: Manifest
    notes: tuple[str, ...]

    def engine_path(self, kind: EngineKind) -> Path:
        return self.path / self.manifest.engines[kind].file

    def profile_index(self, kind: EngineKind, mode: Mode) -> int:
        index = self.manifest.engines[kind].profile_index(mode)
        if index is None:
            raise EngineMismatchError(f"{self.path}: {kind} has no {mode} profile")
        return index


def rebuild_commands(config_file: Path | str, engine_dir: Path | str, model_id: str) -> str:
    onnx_dir = Path(engine_dir) / "onnx" / model_slug(model_id)
    return (
        f"  python scripts/export_onnx.py --config {config_file} --output {onnx_dir}\n"
        f"  python scripts/build_engines.py --config {config_file} --onnx {onnx_dir} --engine-dir {engine_dir}"
    )


def find_engine_folder(engine_dir: Path, needs: RuntimeNeeds, config_file: Path | str) -> EngineFolder:
    """The newest folder under `engine_dir` whose manifest fits `needs`, or an error that says why none does."""
    candidates = sorted(
        (p for p in engine_dir.glob(f"*/{MANIFEST_FILE}") if p.is_file()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    report: list[str] = []
    for manifest_path in candidates:
        folder = manifest_path.parent
        try:
            manifest = read_manifest(folder)
        except ValueError as exc:
            report.append(f"  {folder}: unreadable manifest ({str(exc).splitlines()[0]})")
            continue
        problems = mismatches(manifest, needs, folder)
        if not problems:
            return EngineFolder(path=folder, manifest=manifest, notes=tuple(notes(manifest, needs)))
        report.append(f"  {folder}:")
        report.extend(f"    - {problem}" for problem in problems)
    where = "\n".join(report) if report else f"  no engine folder (with {MANIFEST_FILE}) under {engine_dir}"
    platform = needs.platform
    raise EngineMismatchError(
        f"model.acceleration is tensorrt but no TensorRT engines fit the {needs.mode.mode} model "
        f"({needs.model_id}, {needs.precision}, {needs.mode.width}x{needs.mode.height}, "
        f"TensorRT {platform.tensorrt_version}, {platform.gpu.name} sm{platform.gpu.compute_capability}):\n"
        f"{where}\n"
        f"Build engines for this configuration on this machine:\n"
        f"{rebuild_commands(config_file, engine_dir, needs.model_id)}\n"
        "or set model.acceleration: none to serve with PyTorch."
    )
