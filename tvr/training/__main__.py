"""``python -m tvr.training`` / ``accelerate launch -m tvr.training``: the flags of ``tvr train``."""

import argparse
import sys

from .cli import DESCRIPTION, run
from .config import add_config_arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tvr.training", description=DESCRIPTION)
    add_config_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
