"""`python -m flame_lab.cli`, the same as the `flame-lab` command."""

import sys

from flame_lab.cli import main

sys.exit(main())
