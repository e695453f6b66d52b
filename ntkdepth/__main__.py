"""``python -m ntkdepth``: the ``ntkdepth`` command."""

import sys

from ntkdepth.cli import main

if __name__ == "__main__":
    sys.exit(main())
