"""``python -m pathdiff.cli``."""

import sys

from . import main

sys.exit(main())
