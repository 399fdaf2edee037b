"""Engine folders: what a configuration needs, how a build is named and recorded, and why one does not fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdaccel.engine_io import dynamic_axes
from sdaccel.engine_plan import check_sizes, plan_manifest, profile_shapes
from sdaccel.export_info import ExportInfo, GraphInfo
from sdbackend.engine_manifest import (
    MANIFEST_FILE,
    GpuInfo,
    Manifest,
    ModelDims,
    Platform,
    folder_fingerprint,
    model_slug,
    read_manifest,
    write_manifest,
)
from sdbackend.engine_match import EngineMismatchError, RuntimeNeeds, find_engine_folder, mismatches
from sdbackend.engine_needs import mode_needs, unet_rows
from sdconfig import MODES, Settings

H200 = Platform(tensorrt_version="10.7.0", gpu=GpuInfo(name="NVIDIA H200", compute_capability="9.0"))
DIMS = ModelDims(latent_channels=4, embedding_dim=1024, text_length=77, vae_scale_factor=8)


def settings(**realtime: object) -> Settings:
    data: dict = {"model": {"model_id": "models/sd-turbo", "tiny_vae_id": "models/taesd"}}
    if realtime:
        data["realtime"] = {"pipeline": realtime}
    return Settings.model_validate(data)


def export_info(kinds: tuple[str, ...] = ("unet", "vae_encoder", "vae_decoder", "taesd_encoder", "taesd_decoder")):
    graphs = {kind: GraphInfo(file=f"{kind}.onnx", sha256=f"sha-{kind}", inputs=["x"], outputs=["y"]) for kind in kinds}
    return ExportInfo(
        model_id="models/sd-turbo",
        model_fingerprint="fp-model",
        tiny_vae_id="models/taesd",
        tiny_vae_fingerprint="fp-taesd",
        dtype="float16",
        min_size=256,
        max_size=1024,
        dims=DIMS,
        graphs=graphs,
    )


def manifest_for(config: Settings, platform: Platform = H200, max_steps: int | None = None) -> Manifest:
    needs = [mode_needs(config, mode, max_steps) for mode in MODES]
    sizes = check_sizes(256, 1024, config.pipeline.height, config.pipeline.width)
    return plan_manifest(export_info(), needs, platform, "fp16", sizes)


def runtime(config: Settings, mode: str = "realtime", platform: Platform = H200, **changes: object) -> RuntimeNeeds:
    base = {
        "model_id": "models/sd-turbo",
        "model_fingerprint": "fp-model",
        "tiny_vae_id": "models/taesd",
        "tiny_vae_fingerprint": "fp-taesd",
        "precision": "fp16",
        "platform": platform,
        "mode": mode_needs(config, mode),  # type: ignore[arg-type]
        "engine_dir": Path("engines"),
        "dims": DIMS,
    }
    base.update(changes)
    return RuntimeNeeds(**base)  # type: ignore[arg-type]


def build_folder(root: Path, manifest: Manifest) -> Path:
    folder = root / manifest.folder_name()
    folder.mkdir(parents=True)
    for entry in manifest.engines.values():
        (folder / entry.file).write_bytes(b"engine")
    write_manifest(folder, manifest)
    return folder


# ------------------------------------------------------------------------------ batch plans


def test_unet_rows_follow_streamdiffusion_guidance() -> None:
    assert unet_rows("none", 2) == 2
    assert unet_rows("self", 2) == 2
    assert unet_rows("full", 2) == 4
    assert unet_rows("initialize", 2) == 3


def test_realtime_unet_batch_is_steps_times_sessions() -> None:
    need = mode_needs(settings(t_index_list=[20, 30, 40], cfg_type="self", max_batch=8), "realtime")
    assert (need.unet_batch.min, need.unet_batch.opt, need.unet_batch.max) == (1, 3, 24)
    assert need.vae == "taesd"
    assert need.vae_batch.max == 8


def test_full_guidance_doubles_and_max_steps_widens() -> None:
    config = settings(t_index_list=[32, 45], cfg_type="full", max_batch=4)
    assert mode_needs(config, "realtime").unet_batch.max == 2 * 2 * 4
    assert mode_needs(config, "realtime", max_steps=4).unet_batch.max == 2 * 4 * 4
    assert mode_needs(config, "realtime", max_steps=4).unet_batch.opt == 4  # tuned for what is configured


def test_realtime_without_batching_plans_one_stream() -> None:
    need = mode_needs(settings(batch_across_sessions=False, max_batch=8), "realtime")
    assert need.unet_batch.max == 2
    assert need.vae_batch.max == 1


def test_canvas_runs_one_step_per_call() -> None:
    config = settings()
    need = mode_needs(config, "canvas")
    per_drawing = unet_rows(config.canvas.pipeline.cfg_type, 1)
    assert need.unet_batch.max == per_drawing * config.canvas.pipeline.max_batch
    assert need.vae == "vae"


def test_profile_shapes_cover_sizes_and_batches() -> None:
    need = mode_needs(settings(), "realtime")
    sizes = check_sizes(256, 1024, 512, 512)
    shapes = profile_shapes("unet", DIMS, need.unet_batch, sizes)
    assert shapes["sample"] == ((1, 4, 32, 32), (2, 4, 64, 64), (16, 4, 128, 128))
    assert shapes["timestep"] == ((1,), (2,), (16,))
    assert shapes["encoder_hidden_states"][2] == (16, 77, 1024)
    images = profile_shapes("vae_encoder", DIMS, need.vae_batch, sizes)["images"]
    assert images == ((1, 3, 256, 256), (1, 3, 512, 512), (8, 3, 1024, 1024))


def test_dynamic_axes_name_batch_and_sides() -> None:
    assert dynamic_axes("unet")["sample"] == {0: "B", 2: "h", 3: "w"}
    assert dynamic_axes("unet")["encoder_hidden_states"] == {0: "B"}
    assert dynamic_axes("vae_encoder")["latent_parameters"] == {0: "B", 2: "h", 3: "w"}
    assert dynamic_axes("taesd_decoder")["images"] == {0: "B", 2: "H", 3: "W"}


@pytest.mark.parametrize(
    ("low", "high", "side", "reason"),
    [(200, 1024, 512, "multiple of 64"), (512, 256, 512, "larger than"), (256, 384, 512, "does not hold")],
)
def test_size_ranges_are_checked(low: int, high: int, side: int, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_sizes(low, high, side, side)


# ------------------------------------------------------------------------------ naming and manifest


def test_folder_name_is_readable_and_changes_with_the_plan() -> None:
    config = settings()
    name = manifest_for(config).folder_name()
    assert name.startswith("sd-turbo--fp16--256-1024px--trt10.7.0--sm90--")
    assert manifest_for(config).folder_name() == name
    assert manifest_for(config, max_steps=4).folder_name() != name
    assert manifest_for(settings(max_batch=4)).folder_name() != name


def test_folder_name_ignores_build_time() -> None:
    manifest = manifest_for(settings())
    later = manifest.model_copy(update={"built_at": "2030-01-01T00:00:00+00:00", "build_seconds": {"unet": 99.0}})
    assert later.folder_name() == manifest.folder_name()


def test_model_slug() -> None:
    assert model_slug("stabilityai/sd-turbo") == "sd-turbo"
    assert model_slug("../models/Tiny SD/") == "tiny-sd"


def test_manifest_round_trip(tmp_path: Path) -> None:
    manifest = manifest_for(settings()).model_copy(update={"built_at": "now", "build_seconds": {"unet": 1.5}})
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest
    assert set(manifest.engines) == {"unet", "vae_encoder", "vae_decoder", "taesd_encoder", "taesd_decoder"}
    unet = manifest.engines["unet"]
    assert [p.mode for p in unet.profiles] == ["realtime", "canvas"]
    assert unet.onnx_sha256 == "sha-unet"
    assert [p.mode for p in manifest.engines["taesd_encoder"].profiles] == ["realtime"]


def test_plan_needs_every_graph_the_config_uses() -> None:
    needs = [mode_needs(settings(), mode) for mode in MODES]
    sizes = check_sizes(256, 1024, 512, 512)
    with pytest.raises(ValueError, match="taesd_encoder"):
        plan_manifest(export_info(("unet", "vae_encoder", "vae_decoder")), needs, H200, "fp16", sizes)


# ------------------------------------------------------------------------------ fitting


def test_fitting_manifest_has_no_mismatch(tmp_path: Path) -> None:
    config = settings()
    folder = build_folder(tmp_path, manifest_for(config))
    for mode in MODES:
        assert mismatches(read_manifest(folder), runtime(config, mode), folder) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"model_id": "models/other"}, "model_id"),
        ({"model_fingerprint": "fp-retrained"}, "model_fingerprint"),
        ({"tiny_vae_fingerprint": "fp-other-taesd"}, "tiny_vae_fingerprint"),
        ({"precision": "fp32"}, "precision"),
        ({"platform": Platform(tensorrt_version="10.8.0", gpu=H200.gpu)}, "tensorrt_version"),
        (
            {"platform": Platform(tensorrt_version="10.7.0", gpu=GpuInfo(name="NVIDIA L4", compute_capability="8.9"))},
            "gpu.compute_capability",
        ),
        ({"dims": DIMS.model_copy(update={"embedding_dim": 768})}, "dims"),
    ],
)
def test_each_identity_difference_is_named(changes: dict, field: str) -> None:
    config = settings()
    found = mismatches(manifest_for(config), runtime(config, **changes))
    assert [m.field for m in found] == [field]


def test_ranges_must_cover_what_the_mode_needs() -> None:
    built = manifest_for(settings(t_index_list=[32, 45]))
    wider = settings(t_index_list=[10, 20, 30, 45])
    assert [m.field for m in mismatches(built, runtime(wider))] == ["engines.unet.realtime.batch"]
    bigger = Settings.model_validate({"pipeline": {"width": 1024, "height": 1024}})
    assert [m.field for m in mismatches(built, runtime(bigger))] == []
    smaller_build = plan_manifest(
        export_info(),
        [mode_needs(settings(), m) for m in MODES],
        H200,
        "fp16",
        check_sizes(256, 512, 512, 512),
    )
    assert [m.field for m in mismatches(smaller_build, runtime(bigger))] == ["resolution"]


def test_taesd_identity_only_matters_where_it_is_used() -> None:
    config = settings()
    other = runtime(config, "canvas", tiny_vae_id="models/other-taesd")
    assert mismatches(manifest_for(config), other) == []


def test_missing_engine_file_is_a_mismatch(tmp_path: Path) -> None:
    config = settings()
    folder = build_folder(tmp_path, manifest_for(config))
    (folder / "unet.engine").unlink()
    assert [m.field for m in mismatches(read_manifest(folder), runtime(config), folder)] == ["engines.unet.file"]


def test_other_gpu_of_same_capability_fits_with_a_note(tmp_path: Path) -> None:
    config = settings()
    build_folder(tmp_path, manifest_for(config))
    h100 = Platform(tensorrt_version="10.7.0", gpu=GpuInfo(name="NVIDIA H100", compute_capability="9.0"))
    found = find_engine_folder(tmp_path, runtime(config, platform=h100), "config.yaml")
    assert "NVIDIA H100" in found.notes[0]


def test_find_picks_the_fitting_folder_among_several(tmp_path: Path) -> None:
    config = settings()
    build_folder(tmp_path, manifest_for(config, platform=Platform(tensorrt_version="10.3.0", gpu=H200.gpu)))
    fitting = build_folder(tmp_path, manifest_for(config))
    found = find_engine_folder(tmp_path, runtime(config), "config.yaml")
    assert found.path == fitting
    assert found.profile_index("unet", "canvas") == 1
    assert found.engine_path("taesd_decoder") == fitting / "taesd_decoder.engine"


def test_no_fitting_folder_names_each_difference_and_the_rebuild(tmp_path: Path) -> None:
    config = settings()
    old = Platform(tensorrt_version="10.3.0", gpu=GpuInfo(name="NVIDIA A100", compute_capability="8.0"))
    folder = build_folder(tmp_path, manifest_for(config, platform=old))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(EngineMismatchError) as caught:
        find_engine_folder(tmp_path, runtime(config, engine_dir=tmp_path), "config.yaml")
    message = str(caught.value)
    assert str(folder) in message
    assert "tensorrt_version: engines have '10.3.0', this configuration needs '10.7.0'" in message
    assert "gpu.compute_capability: engines have '8.0', this configuration needs '9.0'" in message
    assert "unreadable manifest" in message
    assert "python scripts/export_onnx.py --config config.yaml" in message
    assert "python scripts/build_engines.py --config config.yaml" in message
    assert "model.acceleration: none" in message


def test_empty_engine_dir_says_so(tmp_path: Path) -> None:
    with pytest.raises(EngineMismatchError, match="no engine folder"):
        find_engine_folder(tmp_path, runtime(settings()), "config.yaml")


def test_fingerprint_follows_configs_and_weights(tmp_path: Path) -> None:
    unet = tmp_path / "unet"
    unet.mkdir()
    (unet / "config.json").write_text('{"in_channels": 4}')
    (unet / "diffusion_pytorch_model.safetensors").write_bytes(b"\x01" * 5000)
    first = folder_fingerprint(tmp_path, ("unet", "vae"))
    assert first == folder_fingerprint(tmp_path, ("unet", "vae"))
    (unet / "diffusion_pytorch_model.safetensors").write_bytes(b"\x02" * 5000)
    second = folder_fingerprint(tmp_path, ("unet", "vae"))
    assert second != first
    (unet / "config.json").write_text('{"in_channels": 9}')
    assert folder_fingerprint(tmp_path, ("unet", "vae")) != second
    assert folder_fingerprint(tmp_path / "absent") is None


def test_canvas_without_batching_plans_one_drawing() -> None:
    config = Settings.model_validate(
        {
            "model": {"model_id": "models/sd-turbo", "tiny_vae_id": "models/taesd"},
            "canvas": {"pipeline": {"batch_across_sessions": False}},
        }
    )
    need = mode_needs(config, "canvas")
    assert need.unet_batch.max == unet_rows(config.canvas.pipeline.cfg_type, 1)
    assert need.vae_batch.max == 1
