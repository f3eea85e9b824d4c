"""``python -m unblur``: the same command line as ``unblur``."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
