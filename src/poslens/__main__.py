"""``python -m poslens``: the same command line as ``poslens`` (for environments without the script on PATH)."""

from .cli import main

if __name__ == "__main__":
    main()
