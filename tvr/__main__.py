"""``python -m tvr``: the ``tvr`` command."""

import sys

from .cli import main

sys.exit(main())
