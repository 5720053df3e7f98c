"""``python -m rmthess``: the ``rmthess`` command line."""

import sys

from rmthess.cli import main

if __name__ == "__main__":
    sys.exit(main())
