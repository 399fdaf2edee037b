#!/usr/bin/env python3
"""Put a model where config.yaml's model.model_id finds it (see `--help`; sdmodels/prepare.py)."""

from sdmodels.prepare import main

if __name__ == "__main__":
    main()
