"""Entry point frozen into the self-contained ctd-decoder executable (see build.sh).

Run as ``ctd-decoder-warm`` (install.sh --warm links it so) it is the warm-start server instead, and
run as ``ocicrypt`` (the node image and ``ocicrypt node install`` link it so) the operator tools.
"""

import os
import sys

if __name__ == "__main__":
    if os.path.basename(sys.argv[0]) == "ctd-decoder-warm":
        from ctd_decoder.decoder.warm.server import main as warm_main

        sys.exit(warm_main())
    if os.path.basename(sys.argv[0]) == "ocicrypt":
        from ctd_decoder.tools.cli import main as tools_main

        sys.exit(tools_main())
    from ctd_decoder.decoder import main

    sys.exit(main())
