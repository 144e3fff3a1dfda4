"""``python -m captum_genomics``: the command line (also ``torchrun ... -m captum_genomics``)."""

import sys

from captum_genomics.cli import main

if __name__ == "__main__":
    sys.exit(main())
