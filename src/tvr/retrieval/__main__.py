"""``python -m tvr.retrieval index|search ...``: the ``tvr index`` / ``tvr search`` commands, for launchers that run a
module (``accelerate launch -m tvr.retrieval index ...``, ``torchrun -m tvr.retrieval index ...``)."""

import sys

from ..cli import main

if __name__ == "__main__":
    from ..utils.process import exit_worker

    exit_worker(main(sys.argv[1:]))
