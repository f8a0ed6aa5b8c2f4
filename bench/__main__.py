"""`python -m bench`: the same as `bench/run`."""

import sys

from bench.cli import main

sys.exit(main())
