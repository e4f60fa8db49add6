"""`python -m foxtrot_stream`: the `foxtrot-stream` command."""

import sys

from foxtrot_stream.surfaces.cli import main

sys.exit(main())
