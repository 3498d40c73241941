"""The ocicrypt library: encrypted OCI layers, their key wrappers and block ciphers.

Usable from any Python program; it knows nothing of containerd or of the decoder's fd 3. Its API is
``__all__`` below, importable from here (``from ctd_decoder.ocicrypt import decrypt_layer``), plus
:mod:`ctd_decoder.ocicrypt.spec`, the names of media types, annotations, config parameters and
environment variables. Every other module is internal: the tools use only this API
(tests/test_import_rules.py checks it); the decoder may use internals.

The names are loaded on first use (module ``__getattr__``): importing this package imports nothing,
so the decoder's start-up pays only for the modules a layer needs. ``DecoderError`` is the deprecated
former name of ``OcicryptError`` (it goes in the next release).
"""

from __future__ import annotations

# (module relative to this package, attribute) of every name of the API.
_EXPORTS: dict[str, tuple[str, str]] = {
    # Layers: decrypt, encrypt, add recipients; the streaming decryptor
    "decrypt_layer": (".layer", "decrypt_layer"),
    "encrypt_layer": (".layer", "encrypt_layer"),
    "add_recipients": (".layer", "add_recipients"),
    "unwrap_private_options": (".layer", "unwrap_private_options"),
    "LayerDecryption": (".layer", "LayerDecryption"),
    "LayerDecryptor": (".blockcipher", "LayerDecryptor"),
    "decrypt_stream": (".stream", "decrypt_stream"),
    "schemes_in": (".keywrap", "schemes_in"),
    "describe_recipients": (".keywrap", "describe_recipients"),
    "b64decode": (".gojson", "b64decode"),
    # The config and descriptor types
    "DecryptConfig": (".config", "DecryptConfig"),
    "EncryptConfig": (".config", "EncryptConfig"),
    "Descriptor": (".descriptor", "Descriptor"),
    # The keys directory (--decryption-keys-path) and what its loader reports
    "load_keys_dir": (".keysdir", "load_keys_dir"),
    "KeysDir": (".keysdir", "KeysDir"),
    "LoadedFile": (".keysdir", "LoadedFile"),
    "strip_password_newline": (".keysdir", "strip_password_newline"),
    "MAX_KEY_FILE_SIZE": (".keysdir", "MAX_KEY_FILE_SIZE"),
    "PASSWORD_SUFFIX": (".keysdir", "PASSWORD_SUFFIX"),
    "EXPOSED_DIRECTORY": (".keysdir", "EXPOSED_DIRECTORY"),
    "SKIP_BAD_PASSWORD": (".keysdir", "SKIP_BAD_PASSWORD"),
    "SKIP_NO_PASSWORD": (".keysdir", "SKIP_NO_PASSWORD"),
    "SKIP_NOT_A_KEY": (".keysdir", "SKIP_NOT_A_KEY"),
    "SKIP_NOT_REGULAR": (".keysdir", "SKIP_NOT_REGULAR"),
    "SKIP_PUBLIC_PGP": (".keysdir", "SKIP_PUBLIC_PGP"),
    "SKIP_UNREADABLE": (".keysdir", "SKIP_UNREADABLE"),
    # Key inspection (the doctor, --key and --recipient)
    "parse_private_key": (".keys", "parse_private_key"),
    "describe_private_key": (".keys", "describe_private_key"),
    "describe_public_key": (".keys", "describe_public_key"),
    "public_key_fingerprint": (".keys", "public_key_fingerprint"),
    "public_key_kind": (".keys", "public_key_kind"),
    "load_certificate": (".keys", "load_certificate"),
    "looks_like_certificate": (".keys", "looks_like_certificate"),
    "load_pem_public_key": (".keyload", "load_pem_public_key"),
    "load_der_public_key": (".keyload", "load_der_public_key"),
    "is_pkcs11_keyfile": (".keys", "is_pkcs11_keyfile"),
    "is_pgp_secret_keyring": (".keywrap.pgp.packets", "is_pgp_secret_keyring"),
    "pgp_secret_key_fingerprints": (".keywrap.pgp.home", "secret_key_fingerprints"),
    "parse_pkcs11_key_file": (".keywrap.pkcs11.wrapper", "parse_key_file"),
    "locate_pkcs11_private_key": (".keywrap.pkcs11.wrapper", "locate_private_key"),
    "load_pkcs11_config": (".keywrap.pkcs11.policy", "load_user_config"),
    "Pkcs11Config": (".keywrap.pkcs11.policy", "Pkcs11Config"),
    "Pkcs11UriError": (".keywrap.pkcs11.uri", "Pkcs11UriError"),
    "scoped_environment": (".keywrap.pkcs11.environment", "scoped_environment"),
    "load_provider_config": (".keywrap.provider.config", "load_config"),
    "ProviderSpec": (".keywrap.provider.config", "ProviderSpec"),
    "check_provider_grpc_connection": (".keywrap.provider.transport", "check_grpc_connection"),
    # A small file read whole, refused over a limit
    "read_bounded": (".boundedfile", "read_bounded"),
    # Stop signals (SIGINT, SIGTERM, SIGHUP) turned into an exception, so clean-ups run
    "raising_on_stop": (".stopsignals", "raising_on_stop"),
    "stop_deferred": (".stopsignals", "stop_deferred"),
    # The errors
    "OcicryptError": (".errors", "OcicryptError"),
    "DecoderError": (".errors", "DecoderError"),
    "FileTooLargeError": (".errors", "FileTooLargeError"),
    "IntegrityError": (".errors", "IntegrityError"),
    "KeysDirError": (".errors", "KeysDirError"),
    "LayerError": (".errors", "LayerError"),
    "LimitError": (".errors", "LimitError"),
    "MissingBackendError": (".errors", "MissingBackendError"),
    "PrivateKeyError": (".errors", "PrivateKeyError"),
    "UnwrapError": (".errors", "UnwrapError"),
    "WrapError": (".errors", "WrapError"),
}

__all__ = [
    "EXPOSED_DIRECTORY",
    "MAX_KEY_FILE_SIZE",
    "PASSWORD_SUFFIX",
    "SKIP_BAD_PASSWORD",
    "SKIP_NOT_A_KEY",
    "SKIP_NOT_REGULAR",
    "SKIP_NO_PASSWORD",
    "SKIP_PUBLIC_PGP",
    "SKIP_UNREADABLE",
    "DecoderError",
    "DecryptConfig",
    "Descriptor",
    "EncryptConfig",
    "FileTooLargeError",
    "IntegrityError",
    "KeysDir",
    "KeysDirError",
    "LayerDecryption",
    "LayerDecryptor",
    "LayerError",
    "LimitError",
    "LoadedFile",
    "MissingBackendError",
    "OcicryptError",
    "Pkcs11Config",
    "Pkcs11UriError",
    "PrivateKeyError",
    "ProviderSpec",
    "UnwrapError",
    "WrapError",
    "add_recipients",
    "b64decode",
    "check_provider_grpc_connection",
    "decrypt_layer",
    "decrypt_stream",
    "describe_private_key",
    "describe_public_key",
    "describe_recipients",
    "encrypt_layer",
    "is_pgp_secret_keyring",
    "is_pkcs11_keyfile",
    "load_certificate",
    "load_der_public_key",
    "load_keys_dir",
    "load_pem_public_key",
    "load_pkcs11_config",
    "load_provider_config",
    "locate_pkcs11_private_key",
    "looks_like_certificate",
    "parse_pkcs11_key_file",
    "parse_private_key",
    "pgp_secret_key_fingerprints",
    "public_key_fingerprint",
    "public_key_kind",
    "raising_on_stop",
    "read_bounded",
    "schemes_in",
    "scoped_environment",
    "spec",
    "stop_deferred",
    "strip_password_newline",
    "unwrap_private_options",
]

TYPE_CHECKING = False  # typing is not imported: the decoder's cold start does not load it
if TYPE_CHECKING:  # what mypy sees; __getattr__ does the same at run time
    from . import spec as spec
    from .blockcipher import LayerDecryptor as LayerDecryptor
    from .boundedfile import read_bounded as read_bounded
    from .config import DecryptConfig as DecryptConfig
    from .config import EncryptConfig as EncryptConfig
    from .descriptor import Descriptor as Descriptor
    from .errors import DecoderError as DecoderError
    from .errors import FileTooLargeError as FileTooLargeError
    from .errors import IntegrityError as IntegrityError
    from .errors import KeysDirError as KeysDirError
    from .errors import LayerError as LayerError
    from .errors import LimitError as LimitError
    from .errors import MissingBackendError as MissingBackendError
    from .errors import OcicryptError as OcicryptError
    from .errors import PrivateKeyError as PrivateKeyError
    from .errors import UnwrapError as UnwrapError
    from .errors import WrapError as WrapError
    from .gojson import b64decode as b64decode
    from .keyload import load_der_public_key as load_der_public_key
    from .keyload import load_pem_public_key as load_pem_public_key
    from .keys import describe_private_key as describe_private_key
    from .keys import describe_public_key as describe_public_key
    from .keys import is_pkcs11_keyfile as is_pkcs11_keyfile
    from .keys import load_certificate as load_certificate
    from .keys import looks_like_certificate as looks_like_certificate
    from .keys import parse_private_key as parse_private_key
    from .keys import public_key_fingerprint as public_key_fingerprint
    from .keys import public_key_kind as public_key_kind
    from .keysdir import EXPOSED_DIRECTORY as EXPOSED_DIRECTORY
    from .keysdir import MAX_KEY_FILE_SIZE as MAX_KEY_FILE_SIZE
    from .keysdir import PASSWORD_SUFFIX as PASSWORD_SUFFIX
    from .keysdir import SKIP_BAD_PASSWORD as SKIP_BAD_PASSWORD
    from .keysdir import SKIP_NO_PASSWORD as SKIP_NO_PASSWORD
    from .keysdir import SKIP_NOT_A_KEY as SKIP_NOT_A_KEY
    from .keysdir import SKIP_NOT_REGULAR as SKIP_NOT_REGULAR
    from .keysdir import SKIP_PUBLIC_PGP as SKIP_PUBLIC_PGP
    from .keysdir import SKIP_UNREADABLE as SKIP_UNREADABLE
    from .keysdir import KeysDir as KeysDir
    from .keysdir import LoadedFile as LoadedFile
    from .keysdir import load_keys_dir as load_keys_dir
    from .keysdir import strip_password_newline as strip_password_newline
    from .keywrap import describe_recipients as describe_recipients
    from .keywrap import schemes_in as schemes_in
    from .keywrap.pgp.home import secret_key_fingerprints as pgp_secret_key_fingerprints
    from .keywrap.pgp.packets import is_pgp_secret_keyring as is_pgp_secret_keyring
    from .keywrap.pkcs11.environment import scoped_environment as scoped_environment
    from .keywrap.pkcs11.policy import Pkcs11Config as Pkcs11Config
    from .keywrap.pkcs11.policy import load_user_config as load_pkcs11_config
    from .keywrap.pkcs11.uri import Pkcs11UriError as Pkcs11UriError
    from .keywrap.pkcs11.wrapper import locate_private_key as locate_pkcs11_private_key
    from .keywrap.pkcs11.wrapper import parse_key_file as parse_pkcs11_key_file
    from .keywrap.provider.config import ProviderSpec as ProviderSpec
    from .keywrap.provider.config import load_config as load_provider_config
    from .keywrap.provider.transport import check_grpc_connection as check_provider_grpc_connection
    from .layer import LayerDecryption as LayerDecryption
    from .layer import add_recipients as add_recipients
    from .layer import decrypt_layer as decrypt_layer
    from .layer import encrypt_layer as encrypt_layer
    from .layer import unwrap_private_options as unwrap_private_options
    from .stopsignals import raising_on_stop as raising_on_stop
    from .stopsignals import stop_deferred as stop_deferred
    from .stream import decrypt_stream as decrypt_stream


def __getattr__(name: str) -> object:
    """Import the module that defines API name ``name`` and return it (then cached in this module)."""
    import importlib

    if name == "spec":  # a submodule: never ``from . import spec`` here, which asks this function again
        return importlib.import_module(f"{__name__}.spec")
    try:
        module_name, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value: object = getattr(importlib.import_module(module_name, __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
