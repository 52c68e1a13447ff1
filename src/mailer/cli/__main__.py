"""`python -m mailer.cli`."""

import sys

from mailer.cli import main

sys.exit(main())
