"""The demo model's figures on held-out scenes: autoencoder PSNR, canvas fidelity, colour words, realtime tracking.

The canvas and realtime figures run through either Triton over gRPC (the served models, as any
client sees them) or the model side's own services in process; both take the same requests.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sdmodels.scenes import COLOURS, HELD_OUT_SEED_START, SHAPES, Shape, render, scene

Generate = Callable[[np.ndarray, str, int], np.ndarray]
"""(drawing RGB, prompt, seed) -> the canvas result RGB."""
Stream = Callable[[list[np.ndarray], str], list[np.ndarray]]
"""(camera frames, prompt) -> one realtime output per frame, through one sequence."""


# ---- figures (pure) ----------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def shape_mask(drawing: np.ndarray, background: tuple[int, int, int], threshold: float = 60.0) -> np.ndarray:
    """Pixels that differ from the background colour: where the shape was drawn."""
    return np.linalg.norm(drawing.astype(np.float64) - np.array(background, np.float64), axis=-1) > threshold


def mean_colour(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return image[mask].astype(np.float64).mean(axis=0)


def nearest_colour(rgb: np.ndarray) -> str:
    return min(COLOURS, key=lambda name: float(np.linalg.norm(rgb - np.array(COLOURS[name], np.float64))))


def centroid_x(image: np.ndarray, background: tuple[int, int, int]) -> float | None:
    """The x of the shape's centre of mass, as a fraction of the width; None if nothing stands out."""
    mask = shape_mask(image, background)
    if mask.sum() < 4:
        return None
    return float(np.nonzero(mask)[1].mean() / image.shape[1])


@dataclass(frozen=True)
class CanvasFidelity:
    ratios: list[float]
    """Per drawing: the other results' mean distance to it over its own result's distance."""

    @property
    def median(self) -> float:
        return float(np.median(self.ratios))

    @property
    def share_at_least_2(self) -> float:
        return float(np.mean([r >= 2 for r in self.ratios]))


def canvas_fidelity(drawings: list[np.ndarray], results: list[np.ndarray]) -> CanvasFidelity:
    ratios = []
    for i, drawing in enumerate(drawings):
        own = mad(results[i], drawing)
        others = np.mean([mad(results[j], drawing) for j in range(len(drawings)) if j != i])
        ratios.append(float(others / max(own, 1e-6)))
    return CanvasFidelity(ratios)


def best_lag_error(inputs: list[float | None], outputs: list[float | None], max_lag: int = 4) -> tuple[int, float]:
    """The lag (frames) at which the output centroids best follow the inputs', and the mean error there."""
    best = (0, float("inf"))
    for lag in range(max_lag + 1):
        pairs = [(a, b) for a, b in zip(inputs, outputs[lag:], strict=False) if a is not None and b is not None]
        if len(pairs) >= max(3, len(inputs) // 2):
            error = float(np.mean([abs(a - b) for a, b in pairs]))
            best = min(best, (lag, error), key=lambda item: item[1])
    return best


# ---- held-out inputs ---------------------------------------------------------------------------


def held_out_scenes(count: int, size: int, offset: int = 0) -> list:
    return [scene(HELD_OUT_SEED_START + offset + i, size) for i in range(count)]


def drawings_with_shapes(count: int, size: int) -> list:
    """Held-out scenes that hold at least one shape (a blank background shows nothing of fidelity)."""
    found = []
    for seed in itertools.count(HELD_OUT_SEED_START):
        candidate = scene(seed, size)
        if candidate.shapes:
            found.append(candidate)
            if len(found) == count:
                return found
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class ColourCase:
    drawing: np.ndarray
    drawn: str
    named: str
    prompt: str


def colour_cases(count: int, size: int, same: bool) -> Iterator[ColourCase]:
    """One shape on white; the prompt names its own colour (`same`) or another one."""
    rng = np.random.default_rng(HELD_OUT_SEED_START + (1 if same else 2))
    colours = [c for c in COLOURS if c != "white"]
    for i in range(count):
        drawn = colours[i % len(colours)]
        named = drawn if same else str(rng.choice([c for c in colours if c != drawn]))
        kind = SHAPES[i % 4]  # the filled shapes: a thin line has too few pixels for a mean colour
        shape = Shape(kind, drawn, (float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.35, 0.65))), 0.24)
        drawing = np.asarray(render(size, ("white",), (shape,), seed=i).image)
        yield ColourCase(drawing, drawn, named, f"a {named} {kind} on a white background")


def moving_shape(frames: int, size: int, kind: str = "circle", colour: str = "blue") -> list[np.ndarray]:
    """A shape crossing a white frame left to right, as a camera would see it move."""
    xs = np.linspace(0.25, 0.75, frames)
    return [
        np.asarray(render(size, ("white",), (Shape(kind, colour, (float(x), 0.5), 0.18),), seed=0).image) for x in xs
    ]


# ---- the two ways to run the models ------------------------------------------------------------


def decode_jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def encode_png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


class InProcess:
    """The model side's services without Triton: same checks, same code, one process."""

    def __init__(self, config_file: Path) -> None:
        from sdbackend.requests import RequestLimits
        from sdbackend.service import build_service
        from sdconfig import load_settings

        self.settings = load_settings(config_file)
        self._services = {mode: build_service(self.settings, config_file, mode) for mode in ("realtime", "canvas")}
        self._limits = {
            mode: RequestLimits.from_settings(self.settings, mode, service.generator.pipe.tokenizer.model_max_length)
            for mode, service in self._services.items()
        }
        self._next_id = 1

    def _request(self, mode: str, image: np.ndarray, prompt: str, seed: int | None):
        from sdbackend.requests import GenerationRequest

        limits = self._limits[mode]
        params = dataclasses.replace(limits.defaults, prompts=((prompt, 1.0),))
        if seed is not None:
            params = dataclasses.replace(params, seeds=((seed, 1.0),))
        return GenerationRequest(image=image, params=params, jpeg_quality=95)

    def canvas(self, drawing: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        from sdbackend.requests import CheckedRequest

        request = CheckedRequest(0, False, False, self._request("canvas", drawing, prompt, seed))
        (outcome,) = self._services["canvas"].handle([request])
        if isinstance(outcome, Exception):
            raise outcome
        return decode_jpeg(outcome)

    def realtime(self, frames: list[np.ndarray], prompt: str) -> list[np.ndarray]:
        from sdbackend.requests import CheckedRequest

        sequence, self._next_id = self._next_id, self._next_id + 1
        outputs = []
        for i, frame in enumerate(frames):
            request = self._request("realtime", frame, prompt, None)
            item = CheckedRequest(sequence, i == 0, i == len(frames) - 1, request)
            (outcome,) = self._services["realtime"].handle([item])
            if isinstance(outcome, Exception):
                raise outcome
            outputs.append(decode_jpeg(outcome))
        return outputs


class OverTriton:
    """The served models over gRPC, with the tensors of sdcontract."""

    def __init__(self, url: str, realtime_model: str, canvas_model: str) -> None:
        import tritonclient.grpc as grpcclient

        self._grpc = grpcclient
        self._client = grpcclient.InferenceServerClient(url)
        self._models = {"realtime": realtime_model, "canvas": canvas_model}
        self._next_id = 9_000_000

    def _inputs(self, image: np.ndarray, prompt: str, seed: int | None) -> list:
        from sdcontract.tensors import IMAGE_INPUT, JPEG_QUALITY_INPUT, PARAMETER_TENSORS

        def tensor(name: str, datatype: str, array: np.ndarray):
            item = self._grpc.InferInput(name, list(array.shape), datatype)
            item.set_data_from_numpy(array)
            return item

        tensors = [
            tensor(IMAGE_INPUT, "BYTES", np.array([[encode_png(image)]], dtype=np.object_)),
            tensor(JPEG_QUALITY_INPUT, "INT32", np.array([[95]], dtype=np.int32)),
            tensor(PARAMETER_TENSORS["prompt"].name, "BYTES", np.array([[prompt.encode()]], dtype=np.object_)),
        ]
        if seed is not None:
            tensors.append(tensor(PARAMETER_TENSORS["seed"].name, "INT64", np.array([[seed]], dtype=np.int64)))
        return tensors

    def canvas(self, drawing: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        result = self._client.infer(self._models["canvas"], self._inputs(drawing, prompt, seed))
        return decode_jpeg(result.as_numpy("IMAGE").reshape(-1)[0])

    def open_sequence(self) -> int:
        """A fresh correlation id; its first frame must carry START."""
        self._next_id += 1
        return self._next_id

    def sequence_frame(self, sequence: int, frame: np.ndarray, prompt: str, start: bool, end: bool) -> np.ndarray:
        result = self._client.infer(
            self._models["realtime"],
            self._inputs(frame, prompt, None),
            sequence_id=sequence,
            sequence_start=start,
            sequence_end=end,
        )
        return decode_jpeg(result.as_numpy("IMAGE").reshape(-1)[0])

    def realtime(self, frames: list[np.ndarray], prompt: str) -> list[np.ndarray]:
        sequence, last = self.open_sequence(), len(frames) - 1
        return [self.sequence_frame(sequence, f, prompt, i == 0, i == last) for i, f in enumerate(frames)]


# ---- autoencoders ------------------------------------------------------------------------------


def autoencoder_psnr(model_dir: Path, count: int = 32, size: int = 256) -> dict[str, float]:
    """Reconstruction PSNR of the VAE and the AutoencoderTiny on held-out scenes, decoded as the services do."""
    from diffusers import AutoencoderKL, AutoencoderTiny

    vae = AutoencoderKL.from_pretrained(str(model_dir / "vae"), torch_dtype=torch.float32).eval()
    tiny = AutoencoderTiny.from_pretrained(str(model_dir / "taesd"), torch_dtype=torch.float32).eval()
    scores: dict[str, list[float]] = {"vae": [], "taesd": []}
    for item in held_out_scenes(count, size):
        pixels = np.asarray(item.image)
        batch = torch.from_numpy(pixels).permute(2, 0, 1)[None].float().div(127.5).sub(1)
        with torch.no_grad():
            outputs = {
                "vae": vae.decode(vae.encode(batch).latent_dist.mean).sample,
                "taesd": tiny.decode(tiny.encode(batch).latents).sample,
            }
        for name, out in outputs.items():
            rgb = out[0].clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()
            scores[name].append(psnr(rgb, pixels))
    return {name: float(np.mean(values)) for name, values in scores.items()}
