"""Same as `python -m nevis.analysis.report`: run the analysis notebooks on run directories."""

import sys

from nevis.analysis.report import main

if __name__ == "__main__":
    sys.exit(main())
