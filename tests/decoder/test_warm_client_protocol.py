"""The small C client (packaging/warm-client/ctd-decoder-client.c) speaks decoder/warm/protocol.py.

Its constants, messages and request layout are read from the C source and compared with the Python
side: a change to either alone fails here (test_warm.py runs the compiled client against the server).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ctd_decoder.decoder import MEDIA_TYPE_ENV, exit_race
from ctd_decoder.decoder.warm import client, protocol

C_SOURCE = Path(__file__).resolve().parents[2] / "packaging" / "warm-client" / "ctd-decoder-client.c"
_STRING = r'"(?:[^"\\]|\\.)*"'


def _c_string(literal: str) -> str:
    """A C string literal's value (the escapes the client uses are Python's too)."""
    value: str = ast.literal_eval(literal)
    return value


def c_defines(source: str) -> dict[str, str | int]:
    """The client's ``#define``s: strings (adjacent literals and earlier string macros joined) and integers."""
    defines: dict[str, str | int] = {}
    for name, body in re.findall(r"^#define (\w+)[ \t]+((?:.*\\\n)*.*)$", source, re.M):
        body = body.replace("\\\n", " ").strip()
        if body.startswith('"') or re.match(r"\w+\s+" + _STRING, body):
            parts = re.findall(_STRING + r"|\w+", body)
            defines[name] = "".join(_c_string(part) if part.startswith('"') else str(defines[part]) for part in parts)
        elif re.fullmatch(r"\(?[\d\s<>()]+\)?", body):
            defines[name] = int(eval(body, {"__builtins__": {}}))  # only digits, shifts and parentheses
    return defines


def _one(pattern: str, source: str) -> str:
    found = re.findall(pattern, source)
    assert len(found) == 1, f"{pattern!r} occurs {len(found)} times in {C_SOURCE.name}"
    return str(found[0])


def _request_fields_in_c(source: str) -> list[str]:
    """The request's fields in the order main() appends them, by what they hold."""
    body = source[source.index("int main(") :]
    fields: list[str] = []
    last_number = ""
    for snprintf_argument, appended in re.findall(
        r'snprintf\(number, sizeof number, "%[ud]", ([^;]+)\);|append\(([^,]+), [01]\)', body
    ):
        if snprintf_argument:
            last_number = snprintf_argument.strip()
        else:
            fields.append(last_number if appended == "number" else appended)
    names = {"MAGIC": "magic", "cwd": "cwd", "(unsigned)mask": "umask", "fd_mask": "fd mask", "argc": "argc"}
    return [names.get(field, {"argv[i]": "argv", "*entry": "environ"}.get(field, field)) for field in fields]


def _request_fields_in_python() -> list[str]:
    """The same, read off an encoded request with a distinct value in every field."""
    request = protocol.Request([b"argument"], [b"NAME=value"], b"layer-dir", umask=0o27, fd_mask=0b1011)
    encoded = request.encode()
    assert int.from_bytes(encoded[:4], "big") == len(encoded) - 4
    by_value = {
        protocol.MAGIC: "magic",
        b"layer-dir": "cwd",
        b"23": "umask",
        b"11": "fd mask",
        b"1": "argc",
        b"argument": "argv",
        b"NAME=value": "environ",
    }
    return [by_value[field] for field in encoded[4:].split(b"\0")]


def mismatches(source: str) -> list[str]:
    """Every way ``source`` (the C client) disagrees with the Python protocol; empty when they agree."""
    defines = c_defines(source)
    python_values: dict[str, object] = {
        "SOCKET_ENV": protocol.SOCKET_ENV,
        "DEFAULT_SOCKET": protocol.DEFAULT_SOCKET,
        "MAGIC": protocol.MAGIC.decode(),
        "MAX_REQUEST": protocol.MAX_REQUEST,
        "SERVER_GONE": client.SERVER_GONE.format(env=protocol.SOCKET_ENV, off=protocol.DISABLED),
    }
    found = [
        f"#define {name}: C {defines.get(name)!r}, Python {value!r}"
        for name, value in python_values.items()
        if defines.get(name) != value
    ]
    c_values: dict[str, tuple[object, object]] = {
        "accepted": (_one(r"answer\[0\] != '(.)'", source), protocol.ACCEPTED.decode()),
        "go": (_one(r"char go = '(.)';", source), protocol.GO.decode()),
        "status": (_one(r"answer\[0\] == '(.)'", source), protocol.STATUS.decode()),
        "status size": (int(_one(r"read_full\(sock, answer, (\d+)\) == \d+", source)), protocol.STATUS_SIZE),
        "disabled": (_one(r'strcmp\(path, "(\w*)"\)', source), protocol.DISABLED),
        "disabled for the cold decoder": (_one(r'setenv\(SOCKET_ENV, "(\w*)", 1\)', source), protocol.DISABLED),
        "passed fds": (
            tuple(range(int(_one(r"fd < (\d+); fd\+\+\)\n\s+if \(fcntl", source)))),
            protocol.PASSED_FDS,
        ),
        "answer timeout": (float(_one(r"struct timeval bound = \{(\d+), 0\}", source)), client.ANSWER_TIMEOUT),
        "media type variable": (_one(r'getenv\("(\w+)"\) == NULL', source), MEDIA_TYPE_ENV),
        "exit-race poll": (int(_one(r"step = \{0, (\d+)\}", source)) / 1e9, exit_race.POLL_INTERVAL),
        "exit-race polls": (
            int(_one(r"i < (\d+) && kill\(decoder, 0\) == 0", source)),
            round(exit_race.REAP_WAIT_LIMIT / exit_race.POLL_INTERVAL),
        ),
        "exit-race margin": (int(_one(r"margin = \{0, (\d+)\}", source)) / 1e9, exit_race.AFTER_REAP_MARGIN),
        "request fields": (_request_fields_in_c(source), _request_fields_in_python()),
    }
    found += [f"{what}: C {c!r}, Python {python!r}" for what, (c, python) in c_values.items() if c != python]
    return found


SOURCE = C_SOURCE.read_text()


def test_the_c_client_and_the_python_protocol_agree() -> None:
    assert set(c_defines(SOURCE)) >= {"SOCKET_ENV", "DEFAULT_SOCKET", "MAGIC", "MAX_REQUEST", "SERVER_GONE"}
    assert _request_fields_in_c(SOURCE) == ["magic", "cwd", "umask", "fd mask", "argc", "argv", "environ"]
    assert mismatches(SOURCE) == []


@pytest.mark.parametrize(
    ("old", "new", "reported"),
    [
        ('#define MAGIC "ctd-decoder-warm/1"', '#define MAGIC "ctd-decoder-warm/2"', "#define MAGIC"),
        ("#define MAX_REQUEST (1 << 20)", "#define MAX_REQUEST (1 << 16)", "#define MAX_REQUEST"),
        ('"(see its log; stop it, or set "', '"(see the log; stop it, or set "', "#define SERVER_GONE"),
        ("answer[0] != 'A'", "answer[0] != 'Y'", "accepted"),
        ("char go = 'G';", "char go = 'g';", "go"),
        ('strcmp(path, "off")', 'strcmp(path, "no")', "disabled"),
        ("struct timeval bound = {1, 0}", "struct timeval bound = {2, 0}", "answer timeout"),
        ('getenv("STREAM_PROCESSOR_MEDIATYPE")', 'getenv("MEDIATYPE")', "media type variable"),
        (
            'failed |= append(number, 1);\n    snprintf(number, sizeof number, "%d", argc);',
            'failed |= append(number, 1);\n    snprintf(number, sizeof number, "%d", argc + 1);',
            "request fields",
        ),
    ],
)
def test_a_change_on_the_c_side_alone_is_reported(old: str, new: str, reported: str) -> None:
    assert old in SOURCE
    found = mismatches(SOURCE.replace(old, new))
    assert any(line.startswith(reported) for line in found), found


def test_a_change_on_the_python_side_alone_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "MAGIC", b"ctd-decoder-warm/2")
    monkeypatch.setattr(protocol, "STATUS_SIZE", 9)
    monkeypatch.setattr(client, "SERVER_GONE", client.SERVER_GONE.replace("went away", "is gone"))
    found = mismatches(SOURCE)
    assert [line.split(":")[0] for line in found] == ["#define MAGIC", "#define SERVER_GONE", "status size"]
