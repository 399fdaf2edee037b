"""Put a Stable Diffusion model where config.yaml's model.model_id can find it.

    python scripts/prepare_model.py tiny --output models/tiny-sd [--seed 0]
        the small random-weight model (a few MB, seconds on a CPU), checked by loading it back
    python scripts/prepare_model.py download stabilityai/sd-turbo --output models/sd-turbo [--taesd madebyollin/taesd]
        a real model copied from the Hugging Face hub (or its local cache) into a folder,
        with the AutoencoderTiny in <output>/taesd

Run from anywhere; relative paths are relative to the working directory.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

log = logging.getLogger("prepare_model")

# The files a StableDiffusionPipeline needs from a hub repository: weights in safetensors only,
# full precision and fp16 variants both (diffusers picks the plain ones).
SD_PATTERNS = [
    "model_index.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/*",
    "scheduler/*",
]
TAESD_PATTERNS = ["config.json", "diffusion_pytorch_model.safetensors"]


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def check_loads(output: Path, use_tiny_vae: bool) -> None:
    """Load the folder through the service's own loader, so a folder that passes here serves."""
    import torch

    from sdbackend.loading import load_pipeline
    from sdconfig import Settings
    from sdconfig.schema import ModelConfig

    output = output.resolve()
    settings = Settings(
        model=ModelConfig(model_id=str(output), tiny_vae_id=str(output / "taesd"), device="cpu", dtype="float32")
    )
    load_pipeline(settings, output / "config.yaml", use_tiny_vae, torch.device("cpu"), torch.float32)


def prepare_tiny(output: Path, seed: int) -> None:
    from sdmodels.builders import create_model

    if output.is_dir() and any(output.iterdir()):
        if not (output / "model_index.json").is_file():
            sys.exit(f"{output} exists and is not a model folder; choose an empty or new --output")
        log.info("%s already holds a model; overwriting it", output)
    started = time.perf_counter()
    create_model("tiny", output, seed=seed)
    built = time.perf_counter() - started
    log.info("built in %.1f s; loading it back to check", built)
    check_loads(output, use_tiny_vae=False)
    check_loads(output, use_tiny_vae=True)
    size_mb = folder_size(output) / 1e6
    print(f"tiny model (seed {seed}) ready: {output.resolve()} ({size_mb:.1f} MB, built in {built:.1f} s)")


def download(model_id: str, output: Path, taesd: str | None) -> None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        sys.exit("huggingface_hub is missing; run scripts/setup.sh first")
    from huggingface_hub.utils import HfHubHTTPError, LocalEntryNotFoundError

    jobs = [(model_id, output, SD_PATTERNS)]
    if taesd:
        jobs.append((taesd, output / "taesd", TAESD_PATTERNS))
    for repo, target, patterns in jobs:
        log.info("fetching %s (from the hub cache when it is there)", repo)
        try:
            snapshot = snapshot_download(repo_id=repo, allow_patterns=patterns)
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
            sys.exit(
                f"could not fetch {repo}: {exc}\n"
                "The hub must be reachable, or the model already in the hub cache (HF_HOME); gated models need "
                "HF_TOKEN. Without a network use `prepare_model.py tiny` for the small random-weight model."
            )
        log.info("copying %s to %s", repo, target)
        # The cache holds symlinks into its blob store; the folder gets real files so it can be moved or mounted.
        shutil.copytree(snapshot, target, symlinks=False, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*"))
    log.info("checking that %s loads", output)
    check_loads(output, use_tiny_vae=bool(taesd))
    print(f"{model_id} ready: {output.resolve()} ({folder_size(output) / 1e9:.2f} GB)")
    print(f"set model.model_id: {output}" + (f" and model.tiny_vae_id: {output / 'taesd'}" if taesd else ""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    tiny = commands.add_parser("tiny", help="create the small random-weight model")
    tiny.add_argument("--output", type=Path, default=Path("models/tiny-sd"))
    tiny.add_argument("--seed", type=int, default=0)
    get = commands.add_parser("download", help="copy a model from the Hugging Face hub")
    get.add_argument("model_id", help="a hub id such as stabilityai/sd-turbo")
    get.add_argument("--output", type=Path, required=True)
    get.add_argument("--taesd", default=None, help="also copy an AutoencoderTiny, e.g. madebyollin/taesd")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="[prepare_model] %(message)s")
    for noisy in ("diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if args.command == "tiny":
        prepare_tiny(args.output, args.seed)
    else:
        download(args.model_id, args.output, args.taesd)
