"""TritonPythonModel shared by streamdiffusion_realtime and streamdiffusion_canvas.

Read requests, check them, hand them to the variant's service, answer. A bad request gets an
INVALID_ARG error naming the problem; the other requests of the batch are answered normally.
Which variant this instance is comes from its config.pbtxt (`variant` parameter); everything
else from the YAML file that the `config_file` parameter (or SD_CONFIG) names.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (_HERE, _HERE.parent.parent):  # sdbackend beside this file, sdconfig at the project root
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

from sdbackend.errors import RequestError  # noqa: E402
from sdbackend.requests import CheckedRequest, RequestLimits, parse_request  # noqa: E402
from sdbackend.service import Outcome, build_service  # noqa: E402
from sdconfig import load_settings, resolve_model_path  # noqa: E402
from sdconfig.loader import ENV_FILE  # noqa: E402
from sdcontract.facts import model_facts  # noqa: E402
from sdcontract.tensors import IMAGE_OUTPUT  # noqa: E402

log = logging.getLogger("streamdiffusion")
FLAG_START = pb_utils.TRITONSERVER_REQUEST_FLAG_SEQUENCE_START
FLAG_END = pb_utils.TRITONSERVER_REQUEST_FLAG_SEQUENCE_END


def _parameters(model_config: dict) -> dict[str, str]:
    return {k: v.get("string_value", "") for k, v in model_config.get("parameters", {}).items()}


def _config_file(args: dict, parameters: dict[str, str]) -> Path:
    """SD_CONFIG wins; else the `config_file` parameter, relative to the model's folder."""
    named = os.environ.get(ENV_FILE) or parameters.get("config_file") or "../../config.yaml"
    path = Path(named)
    if not path.is_absolute():
        path = Path(args["model_repository"]) / path
    return path.resolve()


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        model_config = json.loads(args["model_config"])
        parameters = _parameters(model_config)
        self.mode = parameters.get("variant", "")
        if self.mode not in ("realtime", "canvas"):
            raise ValueError(f"config.pbtxt parameter 'variant' must be realtime or canvas, got {self.mode!r}")
        config_file = _config_file(args, parameters)
        settings = load_settings(config_file)
        model_path = resolve_model_path(config_file, settings.model.model_id)
        self._check_facts(parameters, model_facts(settings, self.mode, model_path))

        self.service = build_service(settings, config_file, self.mode)
        generator = self.service.generator
        self.limits = RequestLimits.from_settings(settings, self.mode, generator.pipe.tokenizer.model_max_length)
        self.count_tokens = generator.count_tokens
        self._stop = threading.Event()
        # the family must outlive its metric, so both are kept
        self._sequence_family, self._sequence_gauge = self._make_gauge(model_config["name"])
        self._expiry = threading.Thread(target=self._expire_idle, name="expire-idle-sequences", daemon=True)
        self._expiry.start()
        log.info("%s ready: %s on %s (%s)", model_config["name"], model_path, generator.device, generator.shape.dtype)

    def execute(self, requests: list) -> list:
        checked = [self._check(request) for request in requests]
        try:
            outcomes: list[Outcome] = self.service.handle(checked)
        except Exception as exc:  # the whole batch failed: every good request hears why
            log.exception("request failed")
            outcomes = [item.checked if not item.ok else exc for item in checked]
        self._sequence_gauge.set(self.service.live_sequences())
        return [_response(outcome) for outcome in outcomes]

    def finalize(self) -> None:
        self._stop.set()

    def _check(self, request: object) -> CheckedRequest:
        flags = request.flags()
        try:
            checked = parse_request(
                lambda name: _as_numpy(pb_utils.get_input_tensor_by_name(request, name)),
                self.limits,
                self.count_tokens,
                ending=bool(flags & FLAG_END),
            )
        except RequestError as exc:
            checked = exc
        return CheckedRequest(request.correlation_id(), bool(flags & FLAG_START), bool(flags & FLAG_END), checked)

    def _expire_idle(self) -> None:
        """Free the state of sequences Triton dropped for idleness; Triton does not tell the model."""
        interval = 1.0
        while not self._stop.wait(interval):
            expired = self.service.expire_idle()
            if expired:  # correlation ids identify a live session's sequence: debug level only
                log.info("freed %d idle sequence(s)", len(expired))
                log.debug("freed idle sequences %s", expired)
            self._sequence_gauge.set(self.service.live_sequences())

    @staticmethod
    def _make_gauge(model_name: str) -> tuple[object, object]:
        family = pb_utils.MetricFamily(
            name="streamdiffusion_live_sequences",
            description="Sequences whose state this model instance holds (always 0 for stateless canvas)",
            kind=pb_utils.MetricFamily.GAUGE,
        )
        return family, family.Metric(labels={"model": model_name})

    @staticmethod
    def _check_facts(parameters: dict[str, str], computed: dict) -> None:
        """Facts rendered into config.pbtxt by the launcher must match the YAML this model reads."""
        rendered = parameters.get("model_facts")
        if rendered and json.loads(rendered) != computed:
            raise ValueError(
                "config.pbtxt's model_facts differ from the configuration file; "
                "start Triton through scripts/launch_triton.py, which renders them"
            )


def _response(outcome: Outcome) -> object:
    """An IMAGE output, or the error: INVALID_ARG for a bad request, INTERNAL for anything else."""
    if isinstance(outcome, RequestError):
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(outcome), pb_utils.TritonError.INVALID_ARG))
    if isinstance(outcome, Exception):
        message = f"internal error: {type(outcome).__name__}: {outcome}"
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INTERNAL))
    payload = outcome if outcome is not None else b""
    return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(IMAGE_OUTPUT, _bytes_tensor(payload))])


def _as_numpy(tensor: object) -> object:
    return None if tensor is None else tensor.as_numpy()


def _bytes_tensor(payload: bytes) -> np.ndarray:
    return np.array([[payload]], dtype=np.object_)
