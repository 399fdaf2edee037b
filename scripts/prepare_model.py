#!/usr/bin/env python3
"""Put a Stable Diffusion model where config.yaml's model.model_id can find it.

    python scripts/prepare_model.py tiny --output models/tiny-sd [--seed 0]
        the small random-weight model (a few MB, seconds on a CPU), checked by loading it back
    python scripts/prepare_model.py download stabilityai/sd-turbo --output models/sd-turbo [--taesd madebyollin/taesd]
        a real model copied from the Hugging Face hub (or its local cache) into a folder,
        with the AutoencoderTiny in <output>/taesd

Run from anywhere; relative paths are relative to the working directory.
"""

from sdmodels.prepare import main

if __name__ == "__main__":
    main()
