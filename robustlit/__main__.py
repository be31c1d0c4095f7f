"""``python -m robustlit`` = the ``robustlit`` console script."""

from robustlit.cli import main

if __name__ == "__main__":
    main()
