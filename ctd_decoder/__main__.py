"""``python -m ctd_decoder`` runs the stream processor."""

import sys

from .decoder import main

sys.exit(main())
