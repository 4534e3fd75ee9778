"""``python -m photostyle.cli`` (e.g. under torchrun): the ``photostyle`` command."""

import sys

from photostyle.cli import main

sys.exit(main())
