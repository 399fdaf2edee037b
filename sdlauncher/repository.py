"""How run/model_repository is rendered from the checked-in model_repository/ and the YAML.

The checked-in configs hold what depends on neither the machine nor the YAML (batching, tensors,
the variant). What does depend on them is filled in here, so each fact keeps one home: the
sequence idle time, the batch sizes, the instance kind (CPU or GPU), the absolute path of the YAML
in use, and the model facts a client reads back through `get_model_config`. Only
`write_repository` touches the file system.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdconfig import MODES, Mode, Settings, resolve_model_path
from sdcontract.facts import model_facts
from sdlauncher.pbtxt import (
    model_name,
    set_batch_waiting,
    set_candidate_sequences,
    set_instance_kind,
    set_max_batch,
    set_model_name,
    set_sequence_idle,
    set_string_parameter,
    string_parameter,
)


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
    """One model's config.pbtxt with the machine- and YAML-dependent facts filled in.

    The sequence fields come from the realtime section; a config without a sequence batcher has none.
    """
    variant = model_variant(text)
    if variant is None:
        return RenderedConfig(name=model_name(text), variant=None, text=text)
    config_file = config_file.resolve()
    model_path = resolve_model_path(config_file, settings.model.model_id)
    facts: dict[str, Any] = model_facts(settings, variant, model_path)
    name = settings.model_name(variant)
    out = set_model_name(text, name)
    out = set_sequence_idle(out, sequence_idle_microseconds(settings))
    pipeline = settings.variant(variant)
    out = set_max_batch(out, pipeline.max_batch)
    out = set_batch_waiting(out, pipeline.preferred_batches(), pipeline.max_queue_delay_ms)
    out = set_candidate_sequences(out, settings.realtime.pipeline.max_sequences)
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
