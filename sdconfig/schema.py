"""Typed settings for the whole service: one YAML file, validated once at start.

Both sides read this schema: the Triton model takes `model`, `pipeline` and its variant's
`pipeline` overrides; the frontends take `server`, `triton` and the modes' `performance`.
Keeping one schema means a key is spelled, typed and defaulted in exactly one place.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

Mode = Literal["realtime", "canvas"]
MODES: tuple[Mode, ...] = ("realtime", "canvas")


class _Strict(BaseModel):
    """Unknown keys are errors: a typo in the YAML must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    """Which weights to load and how to run them."""

    model_id: str = "models/demo-sd"
    """A local diffusers folder (relative to the config file) or a hub id such as stabilityai/sd-turbo."""
    tiny_vae_id: str | None = "models/demo-sd/taesd"
    """A local AutoencoderTiny folder or hub id (madebyollin/taesd); used where a variant sets use_tiny_vae."""
    acceleration: Literal["none", "tensorrt"] = "none"
    engine_dir: str = "engines"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "float16"] = "auto"
    local_files_only: bool = True
    """Never reach a model hub at run time unless the operator says so."""
    torch_compile: Literal["none", "default", "max-autotune", "reduce-overhead"] = "none"
    """CUDA without TensorRT: torch.compile mode for the UNet (compiles per shape, tens of seconds each)."""
    cuda_graphs: bool = False
    """CUDA without TensorRT: replay the UNet from CUDA graphs captured per input shape (not with torch_compile)."""


class PipelineConfig(_Strict):
    """What every variant shares: resolution, scheduler and the accepted parameter ranges."""

    width: int = Field(512, ge=64, le=1024, multiple_of=64)
    height: int = Field(512, ge=64, le=1024, multiple_of=64)
    num_inference_steps: int = Field(50, ge=1, le=1000)
    default_prompt: str = "a watercolor painting, soft light"
    default_negative_prompt: str = "low quality, blurry"
    default_seed: int = Field(2, ge=0, le=2**31 - 1)
    guidance_scale_max: float = Field(20.0, gt=0)
    max_image_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(4096 * 4096, ge=64 * 64)
    max_image_scans: int = Field(100, ge=1, le=100_000)
    """Progressive JPEG scans decoded at most: each is a pass over the whole image (sdcontract/image_budget.py)."""
    max_blend_prompts: int = Field(4, ge=1, le=16)
    """Prompts one request may blend (prompt_list): each new one costs one text-encoder call."""
    max_blend_seeds: int = Field(4, ge=1, le=16)
    """Seeds one request may blend (seed_list): each costs one noise tensor per prepared stream."""
    blend_weight_max: float = Field(1.0, gt=0, le=1000)
    """Largest weight of one blend entry (weights start at 0 and are normalised to sum to 1)."""
    prompt_interpolation: Literal["linear", "slerp"] = "linear"
    """How prompt embeddings are blended where a request does not say: weighted sum or spherical."""
    prompt_cache_size: int = Field(64, ge=1, le=4096)
    """Prompt embeddings kept per model instance (least recently used go first), so an unchanged
    prompt is never encoded again."""


class VariantPipelineConfig(_Strict):
    """What a model variant tunes for its scenario (steps, guidance, VAE)."""

    t_index_list: tuple[int, ...] = (32, 45)
    cfg_type: Literal["none", "full", "self", "initialize"] = "self"
    guidance_scale: float = Field(1.2, ge=0)
    delta: float = Field(1.0, ge=0, le=5)
    use_tiny_vae: bool = True
    batch_across_sessions: bool | Literal["auto"] = "auto"
    """Requests of several sessions in one Triton batch share the model's calls: realtime frames one
    VAE encode, one UNet call and one decode; canvas drawings one UNet call per denoising step.
    "auto": on a GPU; off on the CPU, where the batched convolutions of 512x512 images outgrow the
    caches and run slower than one image after another (docs/benchmarks.md)."""
    max_batch: int = Field(8, ge=1, le=64)
    """Requests Triton may hand the model at once: the rendered config.pbtxt's max_batch_size."""
    preferred_batch_sizes: tuple[int, ...] | None = None
    """Batch sizes Triton's batcher waits for (up to max_queue_delay_ms) before running a smaller
    batch; None: half of max_batch and max_batch."""
    max_queue_delay_ms: float = Field(2.0, ge=0, le=1000)
    """How long Triton may hold a request to fill a preferred batch: latency traded for larger batches."""

    def max_transition_frames(self) -> int:
        """Longest prompt transition a request may ask for; 0 where a variant keeps no stream between requests."""
        return 0

    def batches_across_sessions(self, device: Literal["cpu", "cuda"]) -> bool:
        """Whether requests of several sessions run as one batch on `device`."""
        if self.batch_across_sessions == "auto":
            return device == "cuda"
        return self.batch_across_sessions

    @model_validator(mode="after")
    def _increasing_steps(self) -> VariantPipelineConfig:
        steps = self.t_index_list
        if not steps:
            raise ValueError("t_index_list must name at least one step")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(f"t_index_list must be strictly increasing, got {list(steps)}")
        return self

    def preferred_batches(self) -> tuple[int, ...]:
        if self.preferred_batch_sizes is not None:
            return self.preferred_batch_sizes
        return tuple(sorted({max(1, self.max_batch // 2), self.max_batch}))

    @model_validator(mode="after")
    def _preferred_batches_fit(self) -> VariantPipelineConfig:
        wrong = [size for size in self.preferred_batches() if not 1 <= size <= self.max_batch]
        if wrong:
            raise ValueError(f"preferred_batch_sizes {wrong} must lie between 1 and max_batch ({self.max_batch})")
        return self


class RealtimePerformance(_Strict):
    enable_similar_image_filter: bool = True
    similar_image_filter_threshold: float = Field(0.98, gt=0, lt=1)
    similar_image_filter_max_skip_frame: int = Field(10, ge=0)
    max_fps: float = Field(30, ge=0)
    priority: Literal["latency", "quality"] = "latency"
    jpeg_quality: int = Field(85, ge=1, le=100)
    target_latency_ms: float = Field(250.0, gt=0)
    """The latency objective: a frame whose picture is published later than this after the frame
    arrived counts as a deadline miss (/metrics frontend_deadline_misses_total; the pages show the
    share). 250 ms leaves the demo model on a 2-core CPU (about 25 ms a frame alone) room for a
    queue of several sessions; a GPU service would aim lower."""


class CanvasPerformance(_Strict):
    enable_similar_image_filter: bool = False
    max_fps: float = Field(0, ge=0)
    priority: Literal["latency", "quality"] = "quality"
    jpeg_quality: int = Field(95, ge=1, le=100)
    target_latency_ms: float = Field(1000.0, gt=0)
    """As realtime's: a drawing whose result is published later than this after it arrived is a deadline miss."""
    max_pending_drawings: int = Field(8, ge=1)
    """Bounded queue: past it the server stops reading the socket (back-pressure), never drops."""

    @model_validator(mode="after")
    def _never_filters(self) -> CanvasPerformance:
        if self.enable_similar_image_filter:
            raise ValueError("canvas processes every drawing: enable_similar_image_filter must be false")
        return self


class RealtimePipelineConfig(VariantPipelineConfig):
    """The stream-batch variant: its state lives per Triton sequence."""

    sequence_idle_timeout_s: float = Field(60.0, gt=0)
    """Per-sequence state unused this long is freed by the model itself."""
    max_sequences: int = Field(64, ge=1)
    """Sequences held by one model instance at most; START beyond it is refused."""
    prompt_transition_frames: int = Field(0, ge=0)
    """Frames over which a sequence's prompt embedding moves from the old prompt (or blend) to the
    new one, without resetting its stream batch; 0 jumps on the frame that carries the change."""
    max_prompt_transition_frames: int = Field(120, ge=0, le=10_000)
    """The longest transition a request may ask for (prompt_transition_frames)."""

    input_smoothing: float = Field(0.0, ge=0, lt=1)
    """Exponential average of a sequence's input latents over time (sdbackend/temporal_filter.py):
    camera noise, hence flicker, shrinks; a moving scene trails by about s / (1 - s) frames. 0: off."""
    output_feedback: float = Field(0.0, ge=0, le=1)
    """Share of the previous output latent mixed into each new frame's input latent. With the demo
    model it raises flicker rather than lowering it (docs/benchmarks.md). 0: off."""

    def max_transition_frames(self) -> int:
        return self.max_prompt_transition_frames

    @model_validator(mode="after")
    def _transition_fits(self) -> RealtimePipelineConfig:
        if self.prompt_transition_frames > self.max_prompt_transition_frames:
            raise ValueError(
                f"prompt_transition_frames {self.prompt_transition_frames} exceeds "
                f"max_prompt_transition_frames {self.max_prompt_transition_frames}"
            )
        return self


class CanvasPipelineConfig(VariantPipelineConfig):
    """Canvas's own defaults, which a canvas.pipeline section in the YAML starts from: the full
    denoise per drawing with true guidance at every step and the full VAE, small batches."""

    t_index_list: tuple[int, ...] = (10, 20, 30, 40)
    cfg_type: Literal["none", "full", "self", "initialize"] = "initialize"
    use_tiny_vae: bool = False
    max_batch: int = Field(4, ge=1, le=64)
    max_queue_delay_ms: float = Field(5.0, ge=0, le=1000)


class RealtimeSection(_Strict):
    pipeline: RealtimePipelineConfig = Field(default_factory=RealtimePipelineConfig)
    performance: RealtimePerformance = Field(default_factory=RealtimePerformance)


class CanvasSection(_Strict):
    pipeline: CanvasPipelineConfig = Field(default_factory=CanvasPipelineConfig)
    performance: CanvasPerformance = Field(default_factory=CanvasPerformance)

    @model_validator(mode="after")
    def _guidance_without_stream_batch(self) -> CanvasSection:
        if self.pipeline.cfg_type == "full":
            raise ValueError(
                "canvas.pipeline.cfg_type 'full' is not supported by streamdiffusion 0.1.1 without the stream batch; "
                "use 'initialize', which computes the unconditional prediction at every canvas step"
            )
        return self


ACCESS_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{16,256}$")
"""URL-safe and valid as a WebSocket subprotocol, so one token works in ?token=, a header and a subprotocol."""

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; media-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""What the pages need: their own scripts and styles, results shown through blob: URLs, fetch and
WebSocket to their own host. Nothing inline, nothing from elsewhere, never inside a frame."""


_LABEL = r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
ALLOWED_HOST_PATTERN = re.compile(rf"^\.?{_LABEL}(\.{_LABEL})*\.?$|^[0-9a-f:.]+$")
"""A DNS name (a leading dot: the domain and its subdomains), an IPv4 or an IPv6 address."""


class SecurityConfig(_Strict):
    """What protects the frontends from the open internet; docs/security.md explains each key."""

    allowed_origins: tuple[str, ...] = ()
    """Origins (scheme://host[:port]) whose pages may open the WebSocket besides the server's own
    host; "*" allows any (not recommended). The request's own Host is always allowed."""
    allow_missing_origin: bool = True
    """Clients that send no Origin header (scripts, the Python protocol client, never a browser) may connect."""
    access_token: str | None = Field(None, repr=False)
    """When set, /api/* and /metrics answer only requests carrying it (?token=, Authorization: Bearer,
    or the WebSocket subprotocol token.<TOKEN>); 16+ characters of [A-Za-z0-9._~-]."""
    max_sessions_per_client: int = Field(8, ge=1)
    """Concurrent WebSocket sessions from one client address, both modes together."""
    max_messages_per_second_per_client: float = Field(240.0, gt=0)
    """Messages a second from one client address over all its sessions (each session also has
    server.max_messages_per_second)."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For names the client; empty: the
    peer address is the client."""
    content_security_policy: str = DEFAULT_CSP
    """Sent with the pages; API answers get "default-src 'none'; frame-ancestors 'none'"."""
    session_address_fallback: bool = True
    """A stream request or a replacing connection without the session's key is let in from the client
    address of the session's own WebSocket (clients that predate the key, like StreamDiffusion's demo
    pages). False: the key alone; behind a proxy not in trusted_proxies every client shares one address."""
    allowed_hosts: tuple[str, ...] = ()
    """Host header values served besides loopback (localhost, *.localhost, 127.0.0.0/8, ::1): names,
    ".example.com" for a domain and its subdomains, IP addresses; "*" any (no DNS rebinding guard)."""

    @model_validator(mode="after")
    def _addresses_and_origins(self) -> SecurityConfig:
        for entry in self.trusted_proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {entry!r} is no IP address or CIDR network") from None
        for host in self.allowed_hosts:
            if host != "*" and not ALLOWED_HOST_PATTERN.fullmatch(host.lower()):
                raise ValueError(
                    f"allowed_hosts: {host!r} is no host name; write a name or address without scheme or port, "
                    'e.g. sd.example.com, .example.com or 192.0.2.7 ("*" allows any)'
                )
        for origin in self.allowed_origins:
            parts = urlsplit(origin)
            if origin != "*" and (parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/")):
                raise ValueError(
                    f"allowed_origins: {origin!r} is no origin; write scheme://host[:port], e.g. https://example.com"
                )
        return self

    @model_validator(mode="after")
    def _usable_token(self) -> SecurityConfig:
        if self.access_token is not None and not ACCESS_TOKEN_PATTERN.fullmatch(self.access_token):
            raise ValueError(
                "access_token must be 16 to 256 characters of letters, digits and ._~- "
                "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return self


class ServerConfig(_Strict):
    """The frontends' HTTP side; every limit here is documented in README.md."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    modes: tuple[Mode, ...] = MODES
    """Which modes this frontend process serves: both by default, or one to scale them apart."""
    max_sessions_per_mode: int = Field(32, ge=1)
    idle_timeout_s: float = Field(60.0, gt=0)
    max_message_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    max_messages_per_second: float = Field(120.0, gt=0)
    image_workers: int = Field(2, ge=1, le=64)
    """Threads that check, decode and resize images off the event loop (one costly image waits there)."""
    max_prompt_chars: int = Field(1000, ge=1)
    duplicate_user: Literal["replace", "reject"] = "replace"
    """A second connection with a user_id in use: `replace` closes the old one (a reload), `reject` refuses the new."""
    infer_timeout_s: float = Field(30.0, gt=0)
    max_http_body_bytes: int = Field(64 * 1024, ge=1024)
    """Largest HTTP request body accepted (no route takes one; WebSocket messages have max_message_bytes)."""
    header_timeout_s: float = Field(20.0, gt=0, le=3600)
    """A connection must deliver a complete request head this soon after it opens or after its last
    answer (idle keep-alive time counts), else it is closed: slowly sent headers hold no connection."""
    shutdown_drain_s: float = Field(5.0, ge=0, le=3600)
    """On SIGTERM, how long canvas sessions may go on working through the drawings they hold; each one
    left then gets an error naming it before the 1001 close. Realtime sessions close at once. Keep it
    under the orchestrator's grace period (Kubernetes: 30 s by default; docker/compose.yaml: 30 s)."""
    tls_cert: str | None = None
    """PEM certificate (chain) file: serve HTTPS and WSS, e.g. on a LAN where browsers need a secure
    context for the camera. Relative to the config file's folder. Needs tls_key."""
    tls_key: str | None = None
    """PEM private key file of tls_cert."""
    security: SecurityConfig = Field(default_factory=SecurityConfig)

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both to serve HTTPS, or neither")
        return self


class TritonConfig(_Strict):
    """Where the frontends find Triton, and where the launcher puts it."""

    urls: tuple[str, ...] = ("127.0.0.1:8001",)
    """gRPC endpoints the frontends use; a realtime session stays on one of them."""
    health_interval_s: float = Field(2.0, gt=0)
    """How often the frontends probe each endpoint; an unhealthy one gets no new sessions."""
    host: str = "127.0.0.1"
    grpc_port: int = Field(8001, ge=1, le=65535)
    http_port: int = Field(8002, ge=1, le=65535)
    metrics_port: int = Field(8003, ge=1, le=65535)
    realtime_model: str = "streamdiffusion_realtime"
    canvas_model: str = "streamdiffusion_canvas"
    ready_timeout_s: float = Field(600.0, gt=0)
    log_file: str = "logs/tritonserver.log"
    watchdog_interval_s: float = Field(5.0, ge=0)
    """The launcher checks this often that each model's stub process lives, and reloads a model whose
    stub died (Triton 2.51 does not restart it); 0 turns the watchdog off."""
    cpu_threads_per_model: int = Field(0, ge=0)
    """CPU-only machines: intra-op threads of each model's stub process. 0: the launcher divides the
    cores among the models it loads (or keeps OMP_NUM_THREADS where set), because two stubs with a
    thread per core each starve one another when both are busy."""


class VideoConfig(_Strict):
    """Restyling video files and image sequences: `python -m sdvideo` and the /video page."""

    in_flight: int = Field(4, ge=1, le=64)
    """Calls a job keeps in flight: canvas frames at once (Triton batches them), realtime segments side by side."""
    segment_frames: int = Field(96, ge=1)
    """Realtime: frames per Triton sequence. Each segment is restarted whole on resume, so resumed
    and uninterrupted runs give the same output (sdvideo/plan.py)."""
    warmup_frames: int = Field(8, ge=0)
    """Realtime: frames a segment's sequence sees before its first kept output, so its stream
    batch has settled when the segment begins."""
    jpeg_quality: int = Field(95, ge=1, le=100)
    """Of the frames the model returns, before they are encoded into the output video."""
    jobs_dir: str = "run/video-jobs"
    """Where the page's jobs keep their upload and result, one random-named folder each
    (relative to the config file's folder)."""
    max_upload_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    """Largest clip the page accepts."""
    max_duration_s: float = Field(60.0, gt=0)
    """Longest clip (seconds) the page accepts."""
    max_frames: int = Field(3000, ge=1)
    """Most frames a clip (or its frame rate times its length) may have on the page."""
    max_concurrent_jobs: int = Field(2, ge=1)
    """Page jobs running at once; an upload beyond it is refused with 429 until one finishes."""
    job_ttl_s: float = Field(3600.0, gt=0)
    """A finished page job's files are deleted this long after it ended."""


class Settings(_Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    realtime: RealtimeSection = Field(default_factory=RealtimeSection)
    canvas: CanvasSection = Field(default_factory=CanvasSection)
    server: ServerConfig = Field(default_factory=ServerConfig)
    triton: TritonConfig = Field(default_factory=TritonConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)

    def variant(self, mode: Mode) -> VariantPipelineConfig:
        return self.realtime.pipeline if mode == "realtime" else self.canvas.pipeline

    def performance(self, mode: Mode) -> RealtimePerformance | CanvasPerformance:
        return self.realtime.performance if mode == "realtime" else self.canvas.performance

    def model_name(self, mode: Mode) -> str:
        return self.triton.realtime_model if mode == "realtime" else self.triton.canvas_model
