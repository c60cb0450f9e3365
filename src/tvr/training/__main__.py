"""``python -m tvr.training`` / ``accelerate launch -m tvr.training`` / ``torchrun -m tvr.training``: ``tvr train``
in each process, with its flags and its one-line errors."""

import argparse
import sys

from .cli import DESCRIPTION, run
from .config import add_config_arguments


def main(argv: list[str] | None = None) -> int:
    """Parse ``tvr train``'s flags and train; errors propagate (for callers and tests)."""
    parser = argparse.ArgumentParser(prog="python -m tvr.training", description=DESCRIPTION)
    add_config_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    from ..cli import console_main
    from ..utils.process import exit_worker

    exit_worker(console_main(["train", *sys.argv[1:]]))
