"""`python -m nevis.upward`: see `nevis.upward.run`."""

import sys

from nevis.upward.run import main

sys.exit(main())
