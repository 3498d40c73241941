"""``python -m ctd_decoder`` runs the stream processor."""

import sys

from .cli import main

sys.exit(main())
