"""Entry point frozen into the self-contained ctd-decoder executable (see build.sh)."""

import sys

from ctd_decoder.decoder.main import main

if __name__ == "__main__":
    sys.exit(main())
