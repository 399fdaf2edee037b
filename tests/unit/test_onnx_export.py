"""The ONNX export of the small model, checked against PyTorch with onnxruntime, and the engine wrappers
run end to end over onnxruntime sessions of those graphs (TensorRT itself cannot run here)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
import torch
from diffusers import StableDiffusionPipeline
from streamdiffusion import StreamDiffusion

from sdaccel.engine_io import ENGINE_IO
from sdaccel.export_info import file_sha256, read_export_info
from sdaccel.onnx_check import OnnxRuntimeEngine, max_abs_error
from sdaccel.onnx_export import ModelParts, sample_inputs
from sdbackend.engine_manifest import ENGINE_KINDS, model_dims
from sdbackend.engine_match import EngineMismatchError
from sdbackend.loading import load_pipeline, load_tiny_vae
from sdbackend.tensorrt_runner import EngineUNet, apply_tensorrt, swap_in_engines
from sdconfig import load_settings
from sdmodels.builders import create_model

ROOT = Path(__file__).resolve().parents[2]
SIZE = 128
TOLERANCE = 1e-4
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("onnx")
    create_model("tiny", root / "tiny-sd")
    path = root / "config.yaml"
    path.write_text(
        "model: {model_id: tiny-sd, tiny_vae_id: tiny-sd/taesd, device: cpu, dtype: float32, engine_dir: engines}\n"
        f"pipeline: {{width: {SIZE}, height: {SIZE}}}\n"
        "realtime: {pipeline: {t_index_list: [32, 45], cfg_type: self}}\n"
        "canvas: {pipeline: {t_index_list: [10, 30], cfg_type: initialize, use_tiny_vae: false}}\n"
    )
    return path


def run_script(*args: str, preamble: str = "") -> subprocess.CompletedProcess[str]:
    script, *rest = args
    code = (
        f"{preamble}import runpy, sys; sys.argv = {[script, *rest]!r}; runpy.run_path({script!r}, run_name='__main__')"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def onnx_dir(config_file: Path) -> Path:
    output = config_file.parent / "engines" / "onnx" / "tiny-sd"
    done = run_script("scripts/export_onnx.py", "--config", str(config_file), "--min-size", "64", "--max-size", "256")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[export] [5/5]" in done.stdout
    return output


@pytest.fixture(scope="module")
def parts(config_file: Path) -> ModelParts:
    settings = load_settings(config_file)
    pipe = load_pipeline(settings, config_file, False, CPU, torch.float32)
    tiny = load_tiny_vae(settings, config_file, torch.float32).eval()
    return ModelParts(unet=pipe.unet, dims=model_dims(pipe), vae=pipe.vae, tiny_vae=tiny)


def engines_for(onnx_dir: Path) -> dict[str, OnnxRuntimeEngine]:
    info = read_export_info(onnx_dir)
    return {kind: OnnxRuntimeEngine(onnx_dir / graph.file) for kind, graph in info.graphs.items()}


# ------------------------------------------------------------------------------ the graphs


def test_export_writes_every_graph_with_dynamic_axes(onnx_dir: Path) -> None:
    info = read_export_info(onnx_dir)
    assert set(info.graphs) == set(ENGINE_KINDS)
    assert (info.min_size, info.max_size, info.opset, info.dtype) == (64, 256, 17, "float32")
    assert info.model_id == "tiny-sd" and info.model_fingerprint and info.tiny_vae_fingerprint
    for kind, graph in info.graphs.items():
        assert file_sha256([onnx_dir / graph.file]) == graph.sha256
        model = onnx.load(str(onnx_dir / graph.file), load_external_data=False)
        assert any(op.domain in ("", "ai.onnx") and op.version == 17 for op in model.opset_import)
        assert [i.name for i in model.graph.input] == ENGINE_IO[kind].input_names
        assert [o.name for o in model.graph.output] == ENGINE_IO[kind].output_names
        batch = model.graph.input[0].type.tensor_type.shape.dim[0]
        assert batch.dim_param == "B", f"{kind}: batch axis is not dynamic"


@pytest.mark.parametrize("kind", ENGINE_KINDS)
def test_graph_matches_pytorch(onnx_dir: Path, parts: ModelParts, kind: str) -> None:
    """At shapes other than the traced 2x128x128: batch 1 at the smallest size, batch 3 non-square."""
    engine = engines_for(onnx_dir)[kind]
    module = parts.graphs()[kind]
    errors = []
    for batch, height, width in ((1, 64, 64), (3, 128, 192), (2, 256, 256)):
        inputs = sample_inputs(kind, parts.dims, batch, height, width, device=CPU, dtype=torch.float32)
        errors.append(max_abs_error(module, engine, inputs))
    print(f"ONNX {kind}: max abs error vs PyTorch {max(errors):.2e}")
    assert max(errors) < TOLERANCE


# ------------------------------------------------------------------------------ the runtime wrappers


def realtime_frames(pipe: StableDiffusionPipeline, images: list[torch.Tensor]) -> torch.Tensor:
    stream = StreamDiffusion(pipe, t_index_list=[32, 45], torch_dtype=torch.float32, width=SIZE, height=SIZE)
    stream.prepare("a lake", num_inference_steps=50, guidance_scale=1.2, generator=torch.Generator(), seed=4)
    return torch.cat([stream.decode_image(stream.predict_x0_batch(stream.encode_image(x))) for x in images])


def canvas_frame(pipe: StableDiffusionPipeline, images: list[torch.Tensor]) -> torch.Tensor:
    stream = StreamDiffusion(
        pipe,
        t_index_list=[10, 30],
        torch_dtype=torch.float32,
        width=SIZE,
        height=SIZE,
        use_denoising_batch=False,
        cfg_type="initialize",
    )
    stream.prepare("a hill", "fog", num_inference_steps=50, guidance_scale=1.5, generator=torch.Generator(), seed=9)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(9)
        return stream.decode_image(stream.predict_x0_batch(stream.encode_image(images[0])))


@pytest.mark.parametrize(("use_tiny_vae", "run"), [(True, realtime_frames), (False, canvas_frame)])
@torch.inference_mode()
def test_engine_wrappers_reproduce_pytorch(
    config_file: Path, onnx_dir: Path, use_tiny_vae: bool, run: Callable[..., torch.Tensor]
) -> None:
    """StreamDiffusion over the wrappers (UNet and VAE answered by the exported graphs) gives PyTorch's
    pictures, the AutoencoderKL latent sampled with the stream's generator like in PyTorch."""
    settings = load_settings(config_file)
    generator = torch.Generator().manual_seed(1)
    images = [torch.rand(1, 3, SIZE, SIZE, generator=generator) * 2 - 1 for _ in range(3)]
    expected = run(load_pipeline(settings, config_file, use_tiny_vae, CPU, torch.float32), images)
    pipe = load_pipeline(settings, config_file, use_tiny_vae, CPU, torch.float32)
    swap_in_engines(pipe, engines_for(onnx_dir))
    assert isinstance(pipe.unet, EngineUNet)
    assert pipe.unet.dtype == torch.float32 and pipe.vae.config.scaling_factor == expected_scaling(use_tiny_vae)
    got = run(pipe, images)
    error = float((got - expected).abs().max())
    print(f"StreamDiffusion over ONNX graphs ({'taesd' if use_tiny_vae else 'vae'}): max abs error {error:.2e}")
    assert error < 1e-3


def expected_scaling(use_tiny_vae: bool) -> float:
    return 1.0 if use_tiny_vae else 0.18215


def test_unet_wrapper_keeps_the_diffusers_signature(onnx_dir: Path, parts: ModelParts) -> None:
    unet = EngineUNet(engines_for(onnx_dir)["unet"], parts.unet.config, torch.float32, CPU)
    inputs = sample_inputs("unet", parts.dims, 2, 64, 64, device=CPU, dtype=torch.float32)
    sample, embeds = inputs["sample"], inputs["encoder_hidden_states"]
    as_tuple = unet(sample, 500, encoder_hidden_states=embeds, return_dict=False)[0]
    as_output = unet(sample, torch.tensor(500), encoder_hidden_states=embeds).sample
    assert torch.equal(as_tuple, as_output)
    with pytest.raises(TypeError, match="down_block_additional_residuals"):
        unet(sample, 500, encoder_hidden_states=embeds, down_block_additional_residuals=[sample])


def test_tensorrt_acceleration_never_falls_back(config_file: Path) -> None:
    """Where TensorRT (or CUDA) is missing, asking for it is an error that says so; the pipeline is untouched."""
    settings = load_settings(config_file)
    pipe = load_pipeline(settings, config_file, True, CPU, torch.float32)
    unet = pipe.unet
    with pytest.raises(EngineMismatchError, match=r"tensorrt|CUDA"):
        apply_tensorrt(pipe, settings, config_file, "realtime")
    assert pipe.unet is unet


# ------------------------------------------------------------------------------ the build plan


def test_build_dry_run_plans_every_engine(config_file: Path, onnx_dir: Path) -> None:
    done = run_script("scripts/build_engines.py", "--config", str(config_file), "--onnx", str(onnx_dir), "--dry-run")
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout[done.stdout.index("\n{") :])
    export = read_export_info(onnx_dir)
    assert set(manifest["engines"]) == set(ENGINE_KINDS)
    unet = manifest["engines"]["unet"]
    assert unet["onnx_sha256"] == export.graphs["unet"].sha256
    # realtime: 8 sessions x 2 steps; canvas: 4 drawings x (1 step + 1 unconditional row, cfg "initialize")
    assert [(p["mode"], p["batch"]["max"]) for p in unet["profiles"]] == [("realtime", 16), ("canvas", 8)]
    assert manifest["resolution"] == {"min": 64, "max": 256, "opt_height": SIZE, "opt_width": SIZE}
    assert "unet           realtime batch 1/2/16" in done.stdout


def test_build_without_tensorrt_says_how_to_get_it(config_file: Path, onnx_dir: Path) -> None:
    done = run_script(
        "scripts/build_engines.py",
        "--config",
        str(config_file),
        "--onnx",
        str(onnx_dir),
        preamble="import sys; sys.modules['tensorrt'] = None; ",
    )
    assert done.returncode == 2
    assert "TensorRT 10 is not installed" in done.stderr


def test_build_refuses_onnx_changed_since_export(config_file: Path, onnx_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "onnx"
    copy.mkdir()
    for file in onnx_dir.iterdir():
        copy.joinpath(file.name).write_bytes(file.read_bytes())
    (copy / "taesd_decoder.onnx").write_bytes((copy / "taesd_decoder.onnx").read_bytes() + b"\0")
    done = run_script("scripts/build_engines.py", "--config", str(config_file), "--onnx", str(copy), "--dry-run")
    assert done.returncode == 2
    assert "taesd_decoder: taesd_decoder.onnx differs from what export.json recorded" in done.stderr
