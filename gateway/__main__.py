"""``python -m gateway`` is ``smx-gateway``."""

import sys

from gateway.cli import main

sys.exit(main())
