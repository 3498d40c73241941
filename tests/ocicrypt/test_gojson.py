"""Go's json.Unmarshal rules in ctd_decoder.ocicrypt.gojson, and where its errors say a bad value sits."""

from __future__ import annotations

import pytest

from ctd_decoder.ocicrypt.gojson import BYTES, INT64, STRING, MapOf, SliceOf, Struct, unmarshal

DOCUMENT = Struct(
    {
        "Descriptor": Struct({"size": INT64, "annotations": MapOf(STRING)}),
        "items": SliceOf(Struct({"key": BYTES})),
        "raw": BYTES,
    }
)


def test_members_match_case_insensitively_and_the_last_duplicate_wins() -> None:
    value = unmarshal(b'{"descriptor": {"SIZE": 1}, "Descriptor": {"size": 2}, "items": [{"KEY": "QUJD"}]}', DOCUMENT)
    assert value == {"Descriptor": {"size": 2, "annotations": None}, "items": [{"key": b"ABC"}], "raw": None}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            b'{"Descriptor": {"annotations": {"a": 1}}}',
            "cannot unmarshal number 1 into Descriptor.annotations['a'] of type string",
        ),
        (b'{"Descriptor": {"size": "1"}}', "cannot unmarshal string into Descriptor.size of type int64"),
        (b'{"items": [{"key": "QUJD"}, {"key": "QUJ"}]}', "items[1].key is not valid standard base64"),
        (b'{"items": [{"key": [1, 256]}]}', "cannot unmarshal number 256 into items[0].key of type uint8"),
        (b'{"raw": {}}', "cannot unmarshal object into raw of type []uint8"),
        (b"[]", "cannot unmarshal array into value of type struct"),
    ],
)
def test_an_error_names_where_the_bad_value_sits(document: bytes, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        unmarshal(document, DOCUMENT)
    assert str(raised.value) == message
