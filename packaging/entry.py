"""Entry point frozen into the self-contained ctd-decoder executable (see build.sh).

One bundle, three commands, told apart by the name the executable was started as (install.sh, the
Debian package, the node image and ``ocicrypt node install`` link them all to it): ``ocicrypt`` is the
operator command (doctor, inspect, encrypt, decrypt, node, ...), ``ctd-decoder-warm`` the warm-start
server, anything else the stream processor containerd runs.
"""

import os
import sys

if __name__ == "__main__":
    name = os.path.basename(sys.argv[0])
    if name == "ocicrypt":
        from ctd_decoder.tools.cli import main as tools_main

        sys.exit(tools_main())
    if name == "ctd-decoder-warm":
        from ctd_decoder.decoder.warm.server import main as warm_main

        sys.exit(warm_main())
    from ctd_decoder.decoder import main

    sys.exit(main())
