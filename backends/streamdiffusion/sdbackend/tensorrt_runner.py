"""Serve the UNet and the VAE from TensorRT 10 engines, behind the calls StreamDiffusion makes.

`apply_tensorrt` finds the engine folder that fits the configuration (sdbackend.engine_match; a
folder that does not fit is an error naming each difference, never a silent PyTorch fallback),
loads the engines and replaces `pipe.unet` and `pipe.vae` with wrappers that keep the diffusers
call signatures:

    unet(x, t, encoder_hidden_states=e, return_dict=False)[0]
    retrieve_latents(vae.encode(images), generator)      # AutoencoderKL: sampled with `generator`
    vae.decode(latents, return_dict=False)[0]
    vae.config.scaling_factor, .dtype, .device

TensorRT 10's name-based API only: tensors are bound by name with `set_input_shape` and
`set_tensor_address` on torch CUDA tensors and run with `execute_async_v3` on torch's current
stream, so no host synchronisation is added. `tensorrt` is imported inside the functions that
need it: this module imports, and its wrappers run over any `Engine` (onnxruntime in the tests),
where TensorRT is absent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import torch
from diffusers import StableDiffusionPipeline
from diffusers.models.autoencoder_tiny import AutoencoderTinyOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.unet_2d_condition import UNet2DConditionOutput
from diffusers.models.vae import DecoderOutput, DiagonalGaussianDistribution

from sdbackend.engine_manifest import VAE_ENGINES, EngineKind, GpuInfo, Platform, VaeKind, model_dims
from sdbackend.engine_match import EngineFolder, EngineMismatchError, find_engine_folder, runtime_needs
from sdconfig import Mode, Settings

log = logging.getLogger(__name__)


class Engine(Protocol):
    """Named tensors in, named tensors out."""

    def __call__(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]: ...


def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise EngineMismatchError(
            "model.acceleration is tensorrt but the tensorrt package is not installed; install TensorRT 10 "
            "(pip install tensorrt) or set model.acceleration: none"
        ) from exc
    return tensorrt


def current_platform(device: torch.device) -> Platform:
    """The TensorRT version and GPU that engines must have been built for."""
    trt = _import_tensorrt()
    if device.type != "cuda" or not torch.cuda.is_available():
        raise EngineMismatchError(f"TensorRT engines run on CUDA, and the model's device is {device}")
    major, minor = torch.cuda.get_device_capability(device)
    gpu = GpuInfo(name=torch.cuda.get_device_name(device), compute_capability=f"{major}.{minor}")
    return Platform(tensorrt_version=str(trt.__version__), gpu=gpu)


def _torch_dtypes(trt: Any) -> dict[Any, torch.dtype]:
    pairs = [
        ("float32", torch.float32),
        ("float16", torch.float16),
        ("bfloat16", torch.bfloat16),
        ("int32", torch.int32),
        ("int64", torch.int64),
        ("int8", torch.int8),
        ("uint8", torch.uint8),
        ("bool", torch.bool),
    ]
    return {getattr(trt, name): dtype for name, dtype in pairs if hasattr(trt, name)}


class TensorRTEngine:
    """One deserialized engine, one execution context, one optimization profile."""

    def __init__(self, path: Path, profile_index: int, device: torch.device) -> None:
        trt = _import_tensorrt()
        self.path = path
        self.device = device
        self.profile_index = profile_index
        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(device):
            self._runtime = trt.Runtime(self._logger)  # must outlive the engine
            self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            if self._engine is None:
                raise EngineMismatchError(
                    f"{path}: TensorRT {trt.__version__} could not deserialize this engine; rebuild it "
                    "with scripts/build_engines.py on this machine"
                )
            self._context = self._engine.create_execution_context()
        if profile_index >= self._engine.num_optimization_profiles:
            raise EngineMismatchError(f"{path}: no optimization profile {profile_index}")
        engine, dtypes = self._engine, _torch_dtypes(trt)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: dtypes[engine.get_tensor_dtype(n)] for n in names}
        self.ranges = {
            n: tuple(tuple(int(d) for d in dims) for dims in engine.get_tensor_profile_shape(n, profile_index))
            for n in self.inputs
        }
        self._profile_set = False

    def _check_shape(self, name: str, shape: tuple[int, ...]) -> None:
        low, _, high = self.ranges[name]
        if len(shape) != len(low) or any(not lo <= s <= hi for s, lo, hi in zip(shape, low, high, strict=True)):
            raise ValueError(
                f"{self.path.name}: input {name} has shape {shape}, outside this engine's profile "
                f"{low}..{high}; rebuild wider (scripts/build_engines.py --max-steps, --min-size, --max-size)"
            )

    def __call__(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        if set(inputs) != set(self.inputs):
            raise TypeError(f"{self.path.name} takes {self.inputs}, got {sorted(inputs)}")
        stream = torch.cuda.current_stream(self.device)
        if not self._profile_set:
            self._context.set_optimization_profile_async(self.profile_index, stream.cuda_stream)
            self._profile_set = True
        bound: list[torch.Tensor] = []  # alive until enqueued; later reuse is ordered on the same stream
        for name in self.inputs:
            tensor = inputs[name].to(device=self.device, dtype=self.dtypes[name]).contiguous()
            shape = tuple(tensor.shape)
            self._check_shape(name, shape)
            if not self._context.set_input_shape(name, shape):
                raise ValueError(f"{self.path.name}: TensorRT refused shape {shape} for {name}")
            self._context.set_tensor_address(name, tensor.data_ptr())
            bound.append(tensor)
        outputs: dict[str, torch.Tensor] = {}
        for name in self.outputs:
            shape = tuple(self._context.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
            self._context.set_tensor_address(name, outputs[name].data_ptr())
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"{self.path.name}: TensorRT execution failed (see the TensorRT log above)")
        return outputs


class _EngineModule:
    """What pipeline code reads from a diffusers model besides calling it."""

    def __init__(self, config: Any, dtype: torch.dtype, device: torch.device) -> None:
        self.config = config
        self.dtype = dtype
        self.device = device

    def to(self, *args: Any, **kwargs: Any) -> _EngineModule:
        """Engines stay where they were built; moving the pipeline leaves them alone."""
        return self

    def eval(self) -> _EngineModule:
        return self

    def requires_grad_(self, requires_grad: bool = True) -> _EngineModule:
        return self


class EngineUNet(_EngineModule):
    """`UNet2DConditionModel`'s call, run by an engine."""

    def __init__(self, engine: Engine, config: Any, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(config, dtype, device)
        self.engine = engine

    def __call__(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        return_dict: bool = True,
        **unsupported: Any,
    ) -> UNet2DConditionOutput | tuple[torch.Tensor]:
        extra = sorted(k for k, v in unsupported.items() if v is not None)
        if extra:
            raise TypeError(f"the UNet engine takes sample, timestep and encoder_hidden_states only, not {extra}")
        timesteps = torch.as_tensor(timestep, device=sample.device)
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(sample.shape[0])
        out = self.engine(
            sample=sample, timestep=timesteps.to(torch.float32), encoder_hidden_states=encoder_hidden_states
        )["noise_pred"].to(self.dtype)
        return UNet2DConditionOutput(sample=out) if return_dict else (out,)


class EngineVae(_EngineModule):
    """`AutoencoderKL` (kind "vae") or `AutoencoderTiny` (kind "taesd") encode/decode, run by engines."""

    def __init__(
        self, kind: VaeKind, encoder: Engine, decoder: Engine, config: Any, dtype: torch.dtype, device: torch.device
    ) -> None:
        super().__init__(config, dtype, device)
        self.kind = kind
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, images: torch.Tensor, return_dict: bool = True) -> Any:
        if self.kind == "vae":
            parameters = self.encoder(images=images)["latent_parameters"].to(self.dtype)
            dist = DiagonalGaussianDistribution(parameters)
            return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)
        latents = self.encoder(images=images)["latents"].to(self.dtype)
        return AutoencoderTinyOutput(latents=latents) if return_dict else (latents,)

    def decode(self, latents: torch.Tensor, return_dict: bool = True, generator: Any = None) -> Any:
        images = self.decoder(latents=latents)["images"].to(self.dtype)
        return DecoderOutput(sample=images) if return_dict else (images,)


def _vae_kind(vae: object) -> VaeKind:
    from diffusers import AutoencoderTiny

    return "taesd" if isinstance(vae, AutoencoderTiny) else "vae"


def swap_in_engines(pipe: StableDiffusionPipeline, engines: dict[EngineKind, Engine]) -> None:
    """Replace pipe.unet and pipe.vae by engine wrappers keeping their configs, dtype and device.

    Call before StreamDiffusion objects are built: they copy pipe.unet and pipe.vae when made.
    """
    device, dtype = pipe.unet.device, pipe.unet.dtype
    kind = _vae_kind(pipe.vae)
    unet = EngineUNet(engines["unet"], pipe.unet.config, dtype, device)
    encoder, decoder = VAE_ENGINES[kind]
    vae = EngineVae(kind, engines[encoder], engines[decoder], pipe.vae.config, dtype, device)
    pipe.unet = unet
    pipe.vae = vae


def load_engines(folder: EngineFolder, mode: Mode, vae: VaeKind, device: torch.device) -> dict[EngineKind, Engine]:
    kinds: tuple[EngineKind, ...] = ("unet", *VAE_ENGINES[vae])
    engines: dict[EngineKind, Engine] = {}
    for kind in kinds:
        path = folder.engine_path(kind)
        log.info("loading TensorRT engine %s (%s profile)", path, mode)
        engines[kind] = TensorRTEngine(path, folder.profile_index(kind, mode), device)
    return engines


def apply_tensorrt(pipe: StableDiffusionPipeline, settings: Settings, config_file: Path, mode: Mode) -> EngineFolder:
    """Serve `pipe`'s UNet and VAE from the engine folder that fits `mode`; an error says why none fits.

    Call before any StreamDiffusion object is made from `pipe` (they copy pipe.unet and pipe.vae).
    """
    device = pipe.unet.device
    platform = current_platform(device)
    needs = runtime_needs(settings, config_file, mode, platform, model_dims(pipe))
    vae = _vae_kind(pipe.vae)
    if vae != needs.mode.vae:
        raise EngineMismatchError(
            f"the {mode} pipeline holds a {vae} VAE but its configuration asks for {needs.mode.vae}"
        )
    folder = find_engine_folder(needs.engine_dir, needs, config_file)
    for note in folder.notes:
        log.warning("%s", note)
    engines = load_engines(folder, mode, vae, device)
    swap_in_engines(pipe, engines)
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the PyTorch UNet and VAE are gone
    log.info("%s model runs TensorRT engines from %s", mode, folder.path)
    return folder
