"""The GPU tier runs only where CUDA is: `make test-gpu` on a host with an NVIDIA GPU."""

import pytest
import torch

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device on this host: the GPU tier needs one")
