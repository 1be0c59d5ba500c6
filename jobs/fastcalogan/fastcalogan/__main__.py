"""``python3 -m fastcalogan``."""

import sys

from .cli import main

sys.exit(main())
