"""`python -m fleet`: see fleet.cli.main."""

import sys

from fleet.cli.main import main

sys.exit(main())
