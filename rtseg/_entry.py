"""The `rtseg` command's entry point: a Ctrl-C while Python is still importing rtseg is a one-line exit 130.

The console script imports this module first; it is kept free of imports so that the interrupt, if it
comes while the heavier `rtseg.cli` (and what it imports) loads, is caught here rather than printed as a
KeyboardInterrupt traceback.
"""

import sys


def main() -> int:
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("rtseg: interrupted\n")
        return 130
    return cli_main()
