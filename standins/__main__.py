"""``python -m standins serve``: the stand-in images' entry point (see standins.server)."""

from __future__ import annotations

import sys

from standins.server import main

if __name__ == "__main__":
    sys.exit(main())
