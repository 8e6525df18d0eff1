"""``python -m reduced_pde ARGS`` is ``reduced-pde ARGS`` (the console script), for a checkout that is not installed."""

import sys

from reduced_pde.cli import main

sys.exit(main())
