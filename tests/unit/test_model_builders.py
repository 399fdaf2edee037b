"""The random-weight model: deterministic, saved as a normal diffusers folder, and runnable by StreamDiffusion."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, AutoencoderTiny, LCMScheduler, StableDiffusionPipeline
from streamdiffusion import StreamDiffusion

from sdbackend.loading import ModelLoadError, load_pipeline, resolve_device_dtype
from sdconfig import Settings
from sdconfig.schema import ModelConfig
from sdmodels.builders import (
    SD_TURBO,
    TINY,
    TINY_VAE_SUBFOLDER,
    architecture,
    build_models,
    build_pipeline_on,
    create_model,
    tokenizer_vocab,
)

CPU = torch.device("cpu")


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def _settings(folder: Path, **model: object) -> Settings:
    fields = {"model_id": str(folder), "tiny_vae_id": str(folder / TINY_VAE_SUBFOLDER), **model}
    return Settings(model=ModelConfig(**fields))


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_model("tiny", tmp_path_factory.mktemp("tiny") / "tiny-sd", seed=0)


def _unet_weights(seed: int) -> dict[str, torch.Tensor]:
    unet, *_ = build_models(TINY, seed)
    return unet.state_dict()


def test_same_seed_builds_same_weights() -> None:
    first, second = _unet_weights(3), _unet_weights(3)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_other_seed_builds_other_weights() -> None:
    first, second = _unet_weights(3), _unet_weights(4)
    assert any(not torch.equal(first[k], second[k]) for k in first)


def test_build_leaves_global_random_state_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_models(TINY, 0)
    assert torch.equal(torch.rand(3), expected)


def test_same_seed_saves_same_bytes(tiny_folder: Path, tmp_path: Path) -> None:
    again = create_model("tiny", tmp_path / "again", seed=0)
    assert _digests(again) == _digests(tiny_folder)


def test_saved_folder_has_the_pipeline_layout(tiny_folder: Path) -> None:
    for part in ("model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler", TINY_VAE_SUBFOLDER):
        assert (tiny_folder / part).exists(), part
    assert not (tiny_folder / ".tokenizer-src").exists()
    assert sum(f.stat().st_size for f in tiny_folder.rglob("*") if f.is_file()) < 20_000_000


def test_vocabulary_holds_every_byte_and_the_specials() -> None:
    vocab = tokenizer_vocab()
    assert len(vocab) == 2 * 256 + 2
    assert max(vocab.values()) == vocab["<|endoftext|>"] == len(vocab) - 1
    assert "<|startoftext|>" in vocab


@pytest.mark.parametrize("use_tiny_vae", [False, True])
def test_saved_folder_loads_through_the_service_loader(tiny_folder: Path, use_tiny_vae: bool) -> None:
    pipe = load_pipeline(_settings(tiny_folder), tiny_folder / "config.yaml", use_tiny_vae, CPU, torch.float32)
    assert isinstance(pipe, StableDiffusionPipeline)
    assert isinstance(pipe.vae, AutoencoderTiny if use_tiny_vae else AutoencoderKL)
    assert pipe.vae_scale_factor == 8
    assert pipe.tokenizer.model_max_length == 77
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    assert not any(p.requires_grad for p in pipe.unet.parameters())
    assert not pipe.unet.training
    assert pipe.unet.dtype == torch.float32


def test_relative_model_id_is_relative_to_the_config_file(tiny_folder: Path) -> None:
    settings = _settings(Path(tiny_folder.name), tiny_vae_id=f"{tiny_folder.name}/{TINY_VAE_SUBFOLDER}")
    pipe = load_pipeline(settings, tiny_folder.parent / "config.yaml", True, CPU, torch.float32)
    assert isinstance(pipe.vae, AutoencoderTiny)


def test_missing_folder_names_the_command_that_creates_it(tmp_path: Path) -> None:
    settings = Settings(model=ModelConfig(model_id="models/tiny-sd"))
    with pytest.raises(ModelLoadError, match=r"prepare_model\.py tiny"):
        load_pipeline(settings, tmp_path / "config.yaml", False, CPU, torch.float32)


def test_a_missing_demo_model_says_how_to_restore_it(tmp_path: Path) -> None:
    settings = Settings(model=ModelConfig(model_id="models/demo-sd"))
    with pytest.raises(ModelLoadError, match=r"git checkout -- models/demo-sd.*train_demo_model\.py"):
        load_pipeline(settings, tmp_path / "config.yaml", False, CPU, torch.float32)


def test_uncached_hub_id_offline_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = Settings(model=ModelConfig(model_id="example-owner/not-a-cached-model"))
    with pytest.raises(ModelLoadError, match="local_files_only: false"):
        load_pipeline(settings, tmp_path / "config.yaml", False, CPU, torch.float32)


def test_folder_without_model_index_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"model_index\.json"):
        load_pipeline(_settings(tmp_path / "empty"), tmp_path / "config.yaml", False, CPU, torch.float32)


def test_tiny_vae_without_id_is_refused(tiny_folder: Path) -> None:
    settings = _settings(tiny_folder, tiny_vae_id=None)
    with pytest.raises(ModelLoadError, match="tiny_vae_id"):
        load_pipeline(settings, tiny_folder / "config.yaml", True, CPU, torch.float32)


def test_auto_device_and_dtype_follow_cuda() -> None:
    device, dtype = resolve_device_dtype(ModelConfig())
    expected = (torch.device("cuda"), torch.float16) if torch.cuda.is_available() else (CPU, torch.float32)
    assert (device, dtype) == expected


@pytest.mark.parametrize("use_tiny_vae", [False, True])
def test_streamdiffusion_img2img_runs_on_the_tiny_model(tiny_folder: Path, use_tiny_vae: bool) -> None:
    pipe = load_pipeline(_settings(tiny_folder), tiny_folder / "config.yaml", use_tiny_vae, CPU, torch.float32)
    stream = StreamDiffusion(
        pipe, t_index_list=[32, 45], torch_dtype=torch.float32, width=128, height=128, cfg_type="none"
    )
    stream.prepare("a watercolor painting", num_inference_steps=50, generator=torch.Generator().manual_seed(0))
    assert isinstance(stream.scheduler, LCMScheduler)
    image = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        latent = stream.encode_image(image)
        x0 = stream.predict_x0_batch(latent)
        out = stream.decode_image(x0)
    assert latent.shape == (1, 4, 16, 16)
    assert x0.shape == (1, 4, 16, 16)
    assert out.shape == (1, 3, 128, 128)
    assert torch.isfinite(out).all()


def test_sd_turbo_architecture_has_the_real_sizes() -> None:
    """Built on the meta device: shapes only, no memory, so the real configs are checked cheaply."""
    unet, vae, tiny_vae, text_encoder = build_models(SD_TURBO, 0, "meta")

    def millions(module: torch.nn.Module) -> int:
        return round(sum(p.numel() for p in module.parameters()) / 1e6)

    assert millions(unet) == 866
    assert millions(vae) == 84
    assert millions(tiny_vae) == 2
    assert millions(text_encoder) == 340
    assert unet.config.cross_attention_dim == text_encoder.config.hidden_size == 1024


def test_unknown_architecture_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="sd-turbo"):
        architecture("sdxl")


def test_pipeline_built_in_memory_matches_the_requested_device_and_dtype(tmp_path: Path) -> None:
    pipe, tiny_vae = build_pipeline_on(TINY, CPU, torch.bfloat16, tmp_path)
    assert pipe.unet.dtype == pipe.vae.dtype == pipe.text_encoder.dtype == tiny_vae.dtype == torch.bfloat16
    assert pipe.device == CPU
    assert not any(p.requires_grad for p in pipe.unet.parameters())
