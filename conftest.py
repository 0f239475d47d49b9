"""pytest configuration shared by the unit tests and the notebooks (nbval)."""

import os

# Under pytest-xdist the workers, and the notebook kernels they start, share the machine's
# cores. PyTorch's default of one thread per core in every process oversubscribes them, which
# slows its CPU kernels many times over; one thread per process avoids that.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
