"""`python -m mcr` runs the same command line as the `mcr` script."""

import sys

from .cli import main

sys.exit(main())
