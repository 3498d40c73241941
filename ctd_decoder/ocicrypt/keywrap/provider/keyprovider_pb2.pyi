from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class keyProviderKeyWrapProtocolInput(_message.Message):
    __slots__ = ("KeyProviderKeyWrapProtocolInput",)
    KEYPROVIDERKEYWRAPPROTOCOLINPUT_FIELD_NUMBER: _ClassVar[int]
    KeyProviderKeyWrapProtocolInput: bytes
    def __init__(self, KeyProviderKeyWrapProtocolInput: _Optional[bytes] = ...) -> None: ...

class keyProviderKeyWrapProtocolOutput(_message.Message):
    __slots__ = ("KeyProviderKeyWrapProtocolOutput",)
    KEYPROVIDERKEYWRAPPROTOCOLOUTPUT_FIELD_NUMBER: _ClassVar[int]
    KeyProviderKeyWrapProtocolOutput: bytes
    def __init__(self, KeyProviderKeyWrapProtocolOutput: _Optional[bytes] = ...) -> None: ...
