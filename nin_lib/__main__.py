"""``python -m nin_lib``: the command line (``nin_lib.cli``)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
