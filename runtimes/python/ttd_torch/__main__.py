"""Entry point: python -m ttd_torch (docs/protocol.md, section 1)."""

import sys

from .server import main

if __name__ == "__main__":
    sys.exit(main())
