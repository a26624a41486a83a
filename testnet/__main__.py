"""``python -m testnet …`` from the repository root: the private test network's command line."""

import sys

from testnet.cli import main

sys.exit(main())
