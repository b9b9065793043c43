"""Run ``python -m colorbook --help``."""
import sys

from colorbook.cli import main

sys.exit(main())
