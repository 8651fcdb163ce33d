"""`python -m exporter` is the `exporter` command."""

import sys

from exporter.cli import main

sys.exit(main())
