"""oaviz: interactive latent-space exploration of generative models of OA radiographs."""

import os as _os

# Idle OpenMP threads spin by default. On a small shared CPU (the two-core demo machine, a busy
# server) spinning workers starve each other and small torch/numpy calls run tens of times slower;
# measured on this project's machine: embedding the default cohort 37 s -> 5 s. Set before torch
# loads (importing oaviz comes first in app.py, the CLI and the tests); a user's own value wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
