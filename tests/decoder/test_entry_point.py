"""``ctd_decoder.decoder.main`` is the console entry function, also once the warm server has preloaded the decoder."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect

from ctd_decoder.decoder.warm.server import PRELOADED


def test_main_is_the_entry_function_after_the_warm_server_preloads() -> None:
    for name in PRELOADED:
        importlib.import_module(name)
    assert "ctd_decoder.decoder.cold" in PRELOADED  # the module that was decoder/main.py
    from ctd_decoder.decoder import main

    assert inspect.isfunction(main) and main.__module__ == "ctd_decoder.decoder"


def test_the_console_scripts_load_their_functions() -> None:
    scripts = {ep.name: ep for ep in importlib.metadata.entry_points(group="console_scripts")}
    # A platform wheel's ctd-decoder is the small C client (setup.py); its Python decoder has this name.
    python_decoder = "ctd-decoder-python" if "ctd-decoder-python" in scripts else "ctd-decoder"
    for name, target in (
        (python_decoder, "ctd_decoder.decoder:main"),
        ("ctd-decoder-warm", "ctd_decoder.decoder.warm.server:main"),
        ("ocicrypt", "ctd_decoder.tools.cli:main"),
    ):
        assert scripts[name].value == target
        assert inspect.isfunction(scripts[name].load()), name
