"""``python -m captum_genomics``: the command line (also ``torchrun ... -m captum_genomics``).

Under ``torchrun`` with several ranks on one machine, each rank gets its share of the
CPU's cores for the reference shuffles (``NUMBA_NUM_THREADS``, set before numba is
imported, unless you set it); torchrun itself sets ``OMP_NUM_THREADS`` for torch.
"""

import os
import sys

_local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
if _local > 1 and "NUMBA_NUM_THREADS" not in os.environ:
    os.environ["NUMBA_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _local))

from captum_genomics.cli import main  # noqa: E402 - after the thread share is set

if __name__ == "__main__":
    sys.exit(main())
