"""``python -m robustlit`` = the ``robustlit`` console script."""

import sys

from robustlit.cli import console_main

if __name__ == "__main__":
    sys.exit(console_main())
