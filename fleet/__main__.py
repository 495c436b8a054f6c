"""`python -m fleet`: see fleet.cli.main."""

import sys

from fleet.cli.main import main

if __name__ == "__main__":  # not when a spawned worker process re-imports this module
    sys.exit(main())
