"""`python -m oaviz …` (what torchrun starts) is the same as `oaviz …`."""

import sys

from oaviz.cli import main

sys.exit(main())
