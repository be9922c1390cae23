"""``python -m pathdiff.bench``: the benchmark suite (see :mod:`pathdiff.bench.main`)."""

import sys

from .main import main

raise SystemExit(main(sys.argv[1:]))
