"""The demo model's vocabulary, scenes and trainer: the trainer runs for a few steps so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sdbackend.loading import load_pipeline
from sdconfig import Settings
from sdconfig.schema import ModelConfig
from sdmodels.demo_model import Recipe
from sdmodels.evaluation import best_lag_error, canvas_fidelity, centroid_x, nearest_colour, psnr
from sdmodels.scenes import COLOURS, HELD_OUT_SEED_START, WORDS, Shape, render, scene
from sdmodels.training import train, training_caption
from sdmodels.vocabulary import learn_merges, write_tokenizer


def test_every_caption_word_is_one_token_and_any_text_tokenizes(tmp_path: Path) -> None:
    tokenizer = write_tokenizer(tmp_path, 77, learn_merges(WORDS))
    for word in WORDS:
        assert len(tokenizer(word).input_ids) == 3, word  # start, the word, end
    unknown = tokenizer("a watercolor painting, soft light ☀").input_ids
    assert len(unknown) > 8 and max(unknown) < len(tokenizer.get_vocab())


def test_scenes_are_a_function_of_their_seed_and_captions_name_what_is_drawn() -> None:
    first, again = scene(1234, 64), scene(1234, 64)
    assert np.array_equal(np.asarray(first.image), np.asarray(again.image)) and first.caption == again.caption
    for item in (scene(HELD_OUT_SEED_START + i, 64) for i in range(30)):
        for shape in item.shapes:
            assert f"{shape.colour} {shape.kind}" in item.caption
        assert set(item.caption.split()) <= set(WORDS)


def test_a_drawn_shape_is_where_and_what_colour_it_says() -> None:
    image = np.asarray(render(100, ("white",), (Shape("square", "red", (0.25, 0.5), 0.1),)).image)
    assert nearest_colour(image[50, 25].astype(float)) == "red"
    assert nearest_colour(image[50, 75].astype(float)) == "white"
    assert abs(centroid_x(image, COLOURS["white"]) - 0.25) < 0.02


def test_captions_are_dropped_or_given_unknown_words_as_the_recipe_says() -> None:
    import random

    recipe, rng = Recipe(), random.Random(0)
    captions = [training_caption("a red circle on a white background", rng, recipe) for _ in range(2000)]
    dropped = sum("circle" not in c for c in captions) / len(captions)
    assert abs(dropped - recipe.caption_dropout) < 0.03


def test_figures() -> None:
    flat = np.full((8, 8, 3), 100, np.uint8)
    assert psnr(flat, flat) == 99.0 and 20 < psnr(flat, flat + 10) < 30
    images = [np.full((4, 4, 3), level, np.uint8) for level in (0, 100, 200)]
    assert canvas_fidelity(images, images).share_at_least_2 == 1.0
    assert best_lag_error([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.0, 0.0, 0.1, 0.2, 0.3, 0.4]) == (2, 0.0)


@pytest.fixture(scope="module")
def quick_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    return train(root / "model", root / "work", Recipe.quick())


def test_the_trainer_writes_a_model_the_service_loads(quick_model: Path) -> None:
    settings = Settings(
        model=ModelConfig(model_id=str(quick_model), tiny_vae_id=str(quick_model / "taesd"), device="cpu")
    )
    for tiny in (False, True):
        pipe = load_pipeline(settings, quick_model / "config.yaml", tiny, torch.device("cpu"), torch.float32)
        assert pipe.vae.config.latent_channels == 4
        assert type(pipe.vae).__name__ == ("AutoencoderTiny" if tiny else "AutoencoderKL")
        assert pipe.vae_scale_factor == 8 and pipe.scheduler.config.prediction_type == "epsilon"


def test_retraining_gives_the_same_weights(quick_model: Path, tmp_path: Path) -> None:
    again = train(tmp_path / "model", tmp_path / "work", Recipe.quick())
    for part in ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"):
        first, second = load_file(quick_model / part), load_file(again / part)
        assert first.keys() == second.keys()
        for key in first:
            torch.testing.assert_close(first[key].float(), second[key].float(), atol=1e-3, rtol=1e-3)


def test_an_interrupted_stage_resumes_from_its_checkpoint(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import dataclasses
    import shutil

    short = dataclasses.replace(Recipe.quick(), unet_steps=2)
    train(tmp_path / "model", tmp_path / "work", short)
    for finished in ("unet", "text"):  # as if the run had stopped after its checkpoint at step 2
        shutil.rmtree(tmp_path / "work" / finished)
    with caplog.at_level("INFO", logger="sdmodels.training"):
        train(tmp_path / "model", tmp_path / "work", Recipe.quick())
    assert "unet: resuming at step 2" in caplog.text
    assert torch.load(tmp_path / "work" / "unet.ckpt", weights_only=False)["step"] == Recipe.quick().unet_steps
