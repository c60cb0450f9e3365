"""``python -m tvr``: the ``tvr`` command."""

import sys

from .cli import console_main

sys.exit(console_main())
