"""`python -m foxtrot_stream_redis tail URL --symbols S…`: the same as `foxtrot-stream tail URL
--symbols S…` (every option of it), JSON lines unless `--format table` is given."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from foxtrot_stream.surfaces.cli import main as cli


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] != ["tail"]:
        print(
            "usage: python -m foxtrot_stream_redis tail URL --symbols S… (see foxtrot-stream "
            "tail --help)",
            file=sys.stderr,
        )
        return 2
    if not any(a == "--format" or a.startswith("--format=") for a in args):
        args += ["--format", "jsonl"]  # what this command always printed
    return cli(args)


if __name__ == "__main__":
    sys.exit(main())
