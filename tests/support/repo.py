"""Where the checkout is: the one place tests and helpers take the repository root from."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
