"""`python -m exporter.cli` runs the `exporter` command, as it did when the CLI was one module."""

import sys

from exporter.cli import main

sys.exit(main())
