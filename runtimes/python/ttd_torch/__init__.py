"""ttd_torch: the torch stage server of ttd (see docs/protocol.md, section 1)."""

PROTOCOL_VERSION = 1
