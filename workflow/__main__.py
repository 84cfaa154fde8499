"""`python -m workflow`: the workflow command line (see `workflow.cli`)."""

import sys

from workflow.cli import main

if __name__ == "__main__":
    sys.exit(main())
