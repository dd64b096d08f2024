"""The command-line option reader of compare.py and bench.py."""

import sys
from pathlib import Path


def option(name, default=None):
    """The value after `name` among this program's arguments, or `default` when it is absent."""
    args = sys.argv[1:]
    if name not in args:
        return default
    i = args.index(name)
    if i + 1 >= len(args):
        raise SystemExit(f"{Path(sys.argv[0]).name}: {name} needs a value")
    return args[i + 1]
