"""`python -m fleet`: see fleet.cli."""

import sys

from fleet.cli import main

sys.exit(main())
