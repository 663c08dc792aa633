"""Shipped experiment configs (package data): demo.yaml (the embedded default), ablations/, real-model
configs, deepspeed/ and accelerate/ files. Found by name with ``starloop.loop.config.config_file``."""
