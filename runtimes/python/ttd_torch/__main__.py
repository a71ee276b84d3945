"""Entry point: python -m ttd_torch (docs/protocol.md, section 1), or the fork server with --listen SOCKET."""

import argparse
import sys


def run() -> int:
    """The stdio server without arguments; the fork server (ttd_torch.zygote) with --listen."""
    parser = argparse.ArgumentParser(
        prog="python -m ttd_torch", description="The torch stage server of ttd (docs/protocol.md)."
    )
    parser.add_argument(
        "--listen", metavar="SOCKET", help="run the fork server on this Unix socket path instead of serving stdin"
    )
    parser.add_argument(
        "--spares",
        type=int,
        metavar="N",
        default=None,
        help="with --listen: children forked ahead of requests (default 2; 0: fork on accept)",
    )
    args = parser.parse_args()
    if args.listen is None:
        from .server import main

        return main()
    from .zygote import main as listen

    return listen(args.listen, args.spares)


if __name__ == "__main__":
    sys.exit(run())
