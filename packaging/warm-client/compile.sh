#!/bin/sh
# Compile the small warm client into OUTPUT: statically linked where the C library allows it (an exec
# of it then skips the dynamic loader, about 0.15 ms of every layer), else dynamically.
# Usage: compile.sh OUTPUT [CFLAGS...]    CC: the compiler (default cc)
set -eu
out=$1
shift
src=$(dirname "$0")/ctd-decoder-client.c
cc=${CC:-cc}
"$cc" -O2 -Wall -Werror -static "$@" -o "$out" "$src" 2>/dev/null ||
    "$cc" -O2 -Wall -Werror "$@" -o "$out" "$src"
