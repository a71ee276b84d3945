"""ttd_torch: the torch stage server of ttd (see docs/protocol.md, section 1)."""

import json
import os


def _protocol_version() -> int:
    """The protocol's version, from contract.json beside this package: generated from lib/contract/protocol.ts with the
    ops' schemas (make setup), so the two sides cannot disagree about it."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "contract.json"), encoding="utf-8") as src:
        return int(json.load(src)["protocol"]["version"])


PROTOCOL_VERSION = _protocol_version()
