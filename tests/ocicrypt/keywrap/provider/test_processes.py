"""Key providers as real processes: cmd programs and gRPC servers (plain and TLS), through the installed decoder."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.decoder import Result, run_decoder
from support.keygen import new_key, private_pem
from support.layers import GZIP_ENCRYPTED
from support.proc import state
from support.providers import (
    GrpcServer,
    free_port,
    make_pki,
    requests,
    start_grpc_server,
    write_cmd_provider,
    write_grpc_config,
)

from ctd_decoder.decoder.payload import Payload, encode_payload
from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt import scope
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.layer import encrypt_layer

NAME = "testkp"
ANNOTATION = f"org.opencontainers.image.enc.keys.provider.{NAME}"
ENABLED = base64.b64encode(b"Enabled").decode()


@dataclass
class Layer:
    plaintext: bytes
    blob: bytes
    descriptor: Descriptor

    def payload(self, dc: DecryptConfig | None = None) -> bytes:
        return encode_payload(Payload(dc or DecryptConfig({NAME: [b"Enabled"]}), self.descriptor))


def _wrap_with(config: Path, monkeypatch: pytest.MonkeyPatch) -> Layer:
    monkeypatch.setenv("OCICRYPT_KEYPROVIDER_CONFIG", str(config))
    plaintext = os.urandom(30_000)
    out = io.BytesIO()
    annotations = encrypt_layer(EncryptConfig({NAME: [b"Enabled"]}), io.BytesIO(plaintext), out)
    blob = out.getvalue()
    return Layer(
        plaintext,
        blob,
        Descriptor(GZIP_ENCRYPTED, "sha256:" + hashlib.sha256(blob).hexdigest(), len(blob), annotations),
    )


@pytest.fixture
def layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Layer:
    """A layer wrapped by a cmd provider named NAME (every provider here unwraps the same toy format)."""
    wrap_dir = tmp_path / "wrap"
    wrap_dir.mkdir()
    config, _ = write_cmd_provider(wrap_dir, NAME, "ok")
    return _wrap_with(config, monkeypatch)


def _decode(layer: Layer, config: Path, env: dict[str, str] | None = None, **kwargs: object) -> Result:
    full_env = {"OCICRYPT_KEYPROVIDER_CONFIG": str(config), **(env or {})}
    return run_decoder(layer.blob, kwargs.pop("payload", None) or layer.payload(), env=full_env, **kwargs)  # type: ignore[arg-type]


def _alive(pid: int) -> bool:
    return state(pid) not in ("Z", "")


# --- cmd providers -------------------------------------------------------------------------------


def test_cmd_provider_success_and_request_shape(layer: Layer, tmp_path: Path) -> None:
    config, record = write_cmd_provider(tmp_path, NAME, "ok")
    result = _decode(layer, config)
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext
    [request] = requests(record)
    assert request["op"] == "keyunwrap"
    assert request["keywrapparams"] == {"ec": None, "optsdata": None}
    unwrap = request["keyunwrapparams"]
    assert isinstance(unwrap, dict)
    assert unwrap["annotation"] == layer.descriptor.annotations[ANNOTATION]
    assert unwrap["dc"] == {"Parameters": {NAME: [ENABLED]}}


def _canary_setup(tmp_path: Path) -> tuple[Path, list[bytes], DecryptConfig]:
    """A keys dir and a payload, each with a canary private key; the payload's also has a password."""
    keys = tmp_path / "keys"
    keys.mkdir()
    canary_dir = private_pem(new_key("rsa2048"))
    (keys / "canary.pem").write_bytes(canary_dir)
    canary_payload = private_pem(new_key("p256"))
    dc = DecryptConfig(
        {NAME: [b"Enabled"], params.PRIVKEYS: [canary_payload], params.PRIVKEYS_PASSWORDS: [b"canary-password"]}
    )
    return keys, [canary_dir, canary_payload, b"canary-password"], dc


def test_canary_private_keys_never_reach_the_provider(layer: Layer, tmp_path: Path) -> None:
    keys, canaries, dc = _canary_setup(tmp_path)
    config, record = write_cmd_provider(tmp_path, NAME, "ok")
    result = _decode(layer, config, payload=layer.payload(dc), args=["--decryption-keys-path", str(keys)])
    assert result.returncode == 0, result.stderr
    seen = record.read_text()
    for canary in canaries:
        assert base64.b64encode(canary).decode() not in seen
    assert "privkeys" not in seen
    [request] = requests(record)
    assert request["keyunwrapparams"]["dc"] == {"Parameters": {NAME: [ENABLED]}}  # type: ignore[index]


def test_canary_private_keys_reach_the_provider_only_with_the_switch(layer: Layer, tmp_path: Path) -> None:
    keys, _, dc = _canary_setup(tmp_path)
    config, record = write_cmd_provider(tmp_path, NAME, "ok")
    env = {"CTD_DECODER_PROVIDER_SEND_ALL_KEYS": "1"}
    result = _decode(layer, config, env, payload=layer.payload(dc), args=["--decryption-keys-path", str(keys)])
    assert result.returncode == 0, result.stderr
    [request] = requests(record)
    parameters = request["keyunwrapparams"]["dc"]["Parameters"]  # type: ignore[index]
    key_dir_pem = (keys / "canary.pem").read_bytes()
    assert base64.b64encode(key_dir_pem).decode() in parameters[params.PRIVKEYS]
    assert base64.b64encode(b"canary-password").decode() in parameters[params.PRIVKEYS_PASSWORDS]


def test_provider_exit_status_and_bounded_stderr(layer: Layer, tmp_path: Path) -> None:
    config, _ = write_cmd_provider(tmp_path, NAME, "fail")
    result = _decode(layer, config)
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.startswith("call to DecryptLayer failed: ")
    assert "Error while running command: " in result.stderr
    assert "stderr: provider refuses: EEE" in result.stderr
    assert "more characters cut]: exit status 3" in result.stderr
    assert len(result.stderr) < 2000


def test_provider_printing_garbage(layer: Layer, tmp_path: Path) -> None:
    config, _ = write_cmd_provider(tmp_path, NAME, "garbage")
    result = _decode(layer, config)
    assert result.returncode == 1
    assert "Error while unmarshalling binary executable command output" in result.stderr
    assert "this is not JSON" not in result.stderr  # the provider's stdout could hold key material


def test_null_optsdata_is_no_result(layer: Layer, tmp_path: Path) -> None:
    config, record = write_cmd_provider(tmp_path, NAME, "null")
    result = _decode(layer, config)
    assert result.returncode == 1
    assert len(requests(record)) == 1
    assert result.stderr.startswith("call to DecryptLayer failed: missing private key needed for decryption")


def test_hanging_provider_is_killed_with_its_process_group(layer: Layer, tmp_path: Path) -> None:
    config, record = write_cmd_provider(tmp_path, NAME, "hang")
    started = time.monotonic()
    result = _decode(layer, config, {"CTD_DECODER_PROVIDER_TIMEOUT": "1.5"}, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert "did not answer within 1.5 s (CTD_DECODER_PROVIDER_TIMEOUT)" in result.stderr, result.stderr
    assert elapsed < 20
    child, grandchild = (int(pid) for pid in Path(str(record) + ".pids").read_text().split())
    deadline = time.monotonic() + 5
    while (_alive(child) or _alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child) and not _alive(grandchild)


def test_invalid_timeout_setting_is_explained(layer: Layer, tmp_path: Path) -> None:
    config, record = write_cmd_provider(tmp_path, NAME, "ok")
    result = _decode(layer, config, {"CTD_DECODER_PROVIDER_TIMEOUT": "soon"})
    assert result.returncode == 1
    assert "CTD_DECODER_PROVIDER_TIMEOUT='soon' is not a positive number of seconds" in result.stderr
    assert requests(record) == []


def test_missing_provider_program(layer: Layer, tmp_path: Path) -> None:
    config = tmp_path / "missing-program.conf"
    config.write_text(json.dumps({"key-providers": {NAME: {"cmd": {"path": str(tmp_path / "nope")}}}}))
    result = _decode(layer, config)
    assert result.returncode == 1
    assert f"Error while running command: {tmp_path / 'nope'}" in result.stderr


def test_unset_configuration_reads_differently_and_names_containerds_env(
    layer: Layer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OCICRYPT_KEYPROVIDER_CONFIG")
    result = run_decoder(layer.blob, layer.payload())
    assert result.returncode == 1
    assert result.stderr.startswith("call to DecryptLayer failed: missing private key needed for decryption")
    assert f"provider.{NAME}: OCICRYPT_KEYPROVIDER_CONFIG is not set, so no key provider is configured" in result.stderr
    assert "env = [...] in containerd's config, which must carry \"OCICRYPT_KEYPROVIDER_CONFIG=" in result.stderr
    assert "no key provider of that name" not in result.stderr


def test_unconfigured_and_unreadable_configurations(layer: Layer, tmp_path: Path) -> None:
    other = tmp_path / "other.conf"
    other.write_text('{"key-providers": {"someone-else": {"cmd": {"path": "/bin/true"}}}}')
    result = _decode(layer, other)
    assert result.returncode == 1
    assert (
        f"provider.{NAME}: no key provider of that name in OCICRYPT_KEYPROVIDER_CONFIG file {other} "
        "(it configures: someone-else)"
    ) in result.stderr
    result = _decode(layer, tmp_path / "absent.conf")
    assert result.returncode == 1
    assert f"names {tmp_path / 'absent.conf'}, which cannot be read" in result.stderr
    broken = tmp_path / "broken.conf"
    broken.write_text("{not json")
    result = _decode(layer, broken)
    assert result.returncode == 1
    assert "Error while parsing keyprovider config file" in result.stderr


# --- gRPC providers ------------------------------------------------------------------------------


def test_grpc_provider_success(layer: Layer, tmp_path: Path, grpc_server: GrpcServer) -> None:
    config = write_grpc_config(tmp_path, NAME, grpc_server.target)
    result = _decode(layer, config)
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext
    [request] = requests(grpc_server.record)
    assert request["keyunwrapparams"]["dc"] == {"Parameters": {NAME: [ENABLED]}}  # type: ignore[index]


def test_grpc_provider_wraps_too(tmp_path: Path, grpc_server: GrpcServer, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_grpc_config(tmp_path, NAME, grpc_server.target)
    layer = _wrap_with(config, monkeypatch)
    assert [r["op"] for r in requests(grpc_server.record)] == ["keywrap"]
    result = _decode(layer, config)
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext


def test_grpc_server_down(layer: Layer, tmp_path: Path) -> None:
    config = write_grpc_config(tmp_path, NAME, f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    result = _decode(layer, config)
    assert result.returncode == 1
    assert result.stderr.startswith("call to DecryptLayer failed: "), result.stderr
    assert "Error from grpc method: rpc error: code = Unavailable" in result.stderr, result.stderr
    assert time.monotonic() - started < 25


def test_grpc_hanging_server_hits_the_deadline(layer: Layer, tmp_path: Path) -> None:
    server = start_grpc_server(tmp_path, mode="hang")
    try:
        config = write_grpc_config(tmp_path, NAME, server.target)
        started = time.monotonic()
        result = _decode(layer, config, {"CTD_DECODER_PROVIDER_TIMEOUT": "1"})
        assert result.returncode == 1
        assert f"key provider at {server.target} did not answer UnWrapKey within 1 s" in result.stderr
        assert time.monotonic() - started < 20
    finally:
        server.stop()


def test_grpc_error_echoing_the_request_shows_its_parameters_redacted(layer: Layer, tmp_path: Path) -> None:
    server = start_grpc_server(tmp_path, mode="echo")
    try:
        config = write_grpc_config(tmp_path, NAME, server.target)
        result = _decode(layer, config)
        assert result.returncode == 1
        assert "Error from grpc method: rpc error: code = PermissionDenied desc = refused: " in result.stderr
        assert "[redacted]" in result.stderr, result.stderr
        assert ENABLED not in result.stderr
    finally:
        server.stop()


def test_grpc_error_echoing_every_key_is_not_shown_at_all(layer: Layer, tmp_path: Path) -> None:
    keys, canaries, dc = _canary_setup(tmp_path)
    server = start_grpc_server(tmp_path, mode="echo")
    try:
        config = write_grpc_config(tmp_path, NAME, server.target)
        env = {"CTD_DECODER_PROVIDER_SEND_ALL_KEYS": "1"}
        args = ["--decryption-keys-path", str(keys)]
        result = _decode(layer, config, env, payload=layer.payload(dc), args=args)
        assert result.returncode == 1
        assert "bytes not shown: the request carried every key" in result.stderr, result.stderr
        [request] = requests(server.record)
        sent = request["keyunwrapparams"]["dc"]["Parameters"]  # type: ignore[index]
        assert sent[params.PRIVKEYS], "the switch sent no keys: nothing was at stake"
        for value in [*sent[params.PRIVKEYS], *(base64.b64encode(canary).decode() for canary in canaries)]:
            assert value not in result.stderr
    finally:
        server.stop()


def _client_pair(pki: Path) -> dict[str, object]:
    return {"cert-file": str(pki / "client.pem"), "key-file": str(pki / "client.key"), "server-name": "provider.test"}


def _decode_tls(
    layer: Layer, tmp_path: Path, server: GrpcServer, tls: dict[str, object], env: dict[str, str] | None = None
) -> Result:
    """Decode ``layer`` through ``server`` with a config whose ``grpc-tls`` section is ``tls``."""
    return _decode(layer, write_grpc_config(tmp_path, NAME, server.target, tls), env)


def _assert_unavailable_before_any_request(result: Result, server: GrpcServer) -> None:
    """The handshake failed: the decoder's diagnostic first, and no request reached the server."""
    assert result.returncode == 1
    assert result.stderr.startswith("call to DecryptLayer failed: "), result.stderr  # no gRPC log lines first
    assert "Error from grpc method: rpc error: code = Unavailable" in result.stderr, result.stderr
    assert requests(server.record) == []


def _assert_refused_before_connecting(result: Result, server: GrpcServer, message: str) -> None:
    """Refused with ``message``, no output, no key material, and the server never asked."""
    assert result.returncode == 1 and result.stdout == b""
    assert message in result.stderr, result.stderr
    assert "PRIVATE KEY" not in result.stderr
    assert requests(server.record) == []


SHORT_TIMEOUT = {"CTD_DECODER_PROVIDER_TIMEOUT": "5"}


def test_grpc_tls_with_client_certificate(layer: Layer, tmp_path: Path, tls_server: tuple[GrpcServer, Path]) -> None:
    server, pki = tls_server
    result = _decode_tls(layer, tmp_path, server, {**_client_pair(pki), "root-ca-file": str(pki / "ca.pem")})
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext


def test_grpc_tls_insecure_skip_verify(layer: Layer, tmp_path: Path, tls_server: tuple[GrpcServer, Path]) -> None:
    server, pki = tls_server
    tls = {"cert-file": str(pki / "client.pem"), "key-file": str(pki / "client.key"), "insecure-skip-verify": True}
    result = _decode_tls(layer, tmp_path, server, tls)
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext


def test_grpc_tls_rejects_an_unknown_server(layer: Layer, tmp_path: Path, tls_server: tuple[GrpcServer, Path]) -> None:
    server, pki = tls_server
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    other_ca = make_pki(stranger).ca
    result = _decode_tls(layer, tmp_path, server, {**_client_pair(pki), "root-ca-file": str(other_ca)}, SHORT_TIMEOUT)
    _assert_unavailable_before_any_request(result, server)


def test_grpc_tls_without_client_certificate_is_refused(
    layer: Layer, tmp_path: Path, tls_server: tuple[GrpcServer, Path]
) -> None:
    server, pki = tls_server
    tls = {"root-ca-file": str(pki / "ca.pem"), "server-name": "provider.test"}
    result = _decode_tls(layer, tmp_path, server, tls, SHORT_TIMEOUT)
    assert result.returncode == 1
    assert "Error from grpc method" in result.stderr
    assert requests(server.record) == []


# The system pool as Go reads it: SSL_CERT_FILE replaces the bundle files, SSL_CERT_DIR the directories.
SYSTEM_POOLS = {
    "ssl-cert-file": lambda ca, empty: {"SSL_CERT_FILE": str(ca), "SSL_CERT_DIR": str(empty)},
    "ssl-cert-dir": lambda ca, empty: {"SSL_CERT_FILE": f"{empty}/none.pem", "SSL_CERT_DIR": f"{empty}:{ca.parent}"},
}


@pytest.mark.parametrize("pool", list(SYSTEM_POOLS))
def test_grpc_tls_without_a_root_ca_file_trusts_the_system_pool(
    pool: str, layer: Layer, tmp_path: Path, tls_server: tuple[GrpcServer, Path]
) -> None:
    """No root-ca-file: the system's roots, found as Go finds them (grpcio's bundled roots would not
    hold the test CA either); the test CA is made a system root through Go's own variables."""
    server, pki = tls_server
    empty = tmp_path / "empty"
    empty.mkdir()
    roots = tmp_path / "roots"
    roots.mkdir()
    (roots / "test-ca.pem").write_bytes((pki / "ca.pem").read_bytes())
    env = SYSTEM_POOLS[pool](roots / "test-ca.pem", empty)
    result = _decode_tls(layer, tmp_path, server, _client_pair(pki), env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext
    assert len(requests(server.record)) == 1


def test_grpc_tls_system_pool_without_the_servers_ca_is_refused(
    layer: Layer, tmp_path: Path, tls_server: tuple[GrpcServer, Path]
) -> None:
    server, pki = tls_server
    env = {"SSL_CERT_FILE": "", "SSL_CERT_DIR": "", **SHORT_TIMEOUT}
    result = _decode_tls(layer, tmp_path, server, _client_pair(pki), env)
    assert result.stdout == b""
    _assert_unavailable_before_any_request(result, server)


def test_grpc_tls_root_ca_file_without_a_certificate_is_refused_before_connecting(
    layer: Layer, tmp_path: Path, tls_server: tuple[GrpcServer, Path]
) -> None:
    server, pki = tls_server
    not_a_ca = tmp_path / "ca.pem"
    not_a_ca.write_bytes((pki / "client.key").read_bytes())  # PEM, but a key
    result = _decode_tls(layer, tmp_path, server, {**_client_pair(pki), "root-ca-file": str(not_a_ca)})
    _assert_refused_before_connecting(result, server, f"no root CA certs parsed from file {not_a_ca}")


def test_grpc_tls_client_key_of_another_certificate_is_refused_before_connecting(
    layer: Layer, tmp_path: Path, tls_server: tuple[GrpcServer, Path]
) -> None:
    server, pki = tls_server
    tls = {**_client_pair(pki), "root-ca-file": str(pki / "ca.pem"), "key-file": str(pki / "server.key")}
    result = _decode_tls(layer, tmp_path, server, tls)
    _assert_refused_before_connecting(result, server, "failed to load client certificate and key: the private key in")


def test_grpc_tls_names_a_missing_root_ca_file(
    layer: Layer, tmp_path: Path, tls_server: tuple[GrpcServer, Path]
) -> None:
    server, pki = tls_server
    missing = tmp_path / "no-such-ca.pem"
    result = _decode_tls(layer, tmp_path, server, {**_client_pair(pki), "root-ca-file": str(missing)})
    assert result.returncode == 1
    assert f"failed to load root CA certificates {missing}: No such file or directory" in result.stderr, result.stderr


def test_provider_calls_stop_at_the_layers_key_trial_budget(layer: Layer, tmp_path: Path) -> None:
    # 40 wrapped keys for a provider that fails every call: the budget (scope.MAX_KEY_TRIALS, one
    # provider call costing scope.PROCESS_RUN) ends the layer, even though the wrapper reports each
    # failure, the last one included, as its own.
    config, record = write_cmd_provider(tmp_path, NAME, "fail")
    annotations = dict(layer.descriptor.annotations)
    annotations[ANNOTATION] = ",".join([annotations[ANNOTATION]] * 40)
    descriptor = Descriptor(layer.descriptor.media_type, layer.descriptor.digest, layer.descriptor.size, annotations)
    result = _decode(layer, config, payload=encode_payload(Payload(DecryptConfig({NAME: [b"Enabled"]}), descriptor)))
    assert result.returncode == 1 and result.stdout == b""
    head = result.stderr.splitlines()[0]
    assert head.startswith("call to DecryptLayer failed: stopped before calling key provider"), result.stderr
    assert f"already used its {scope.MAX_KEY_TRIALS} key trials" in head
    assert len(requests(record)) == scope.MAX_KEY_TRIALS // scope.PROCESS_RUN
