"""Request bodies are read as grpc-gateway reads them: one JSON value, Go's error wording."""

from __future__ import annotations

import pytest

from node.api.codec import b64decode, parse_body
from node.api.errors import status
from node.errors import EtcdError

GO_SYNTAX = [
    (b'{"key":', "unexpected EOF"),
    (b'{"key":"abc', "unexpected EOF"),
    (b"{bad}", "invalid character 'b' looking for beginning of object key string"),
    (b"{'key':1}", "invalid character '\\'' looking for beginning of object key string"),
    (b'{"key" 1}', "invalid character '1' after object key"),
    (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
    (b'{"a":[1 2]}', "invalid character '2' after array element"),
    (b'{"a":"x\ny"}', "invalid character '\\n' in string literal"),
    (b'{"a":"\\q"}', "invalid character 'q' in string escape code"),
    (b'{"a":}', "invalid character '}' looking for beginning of value"),
    (b"[1,2]", "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"),
    (b'"key"', "json: cannot unmarshal string into Go value of type map[string]json.RawMessage"),
]


@pytest.mark.parametrize(("raw", "message"), GO_SYNTAX)
def test_syntax_errors_use_gos_wording(raw: bytes, message: str) -> None:
    with pytest.raises(EtcdError) as err:
        parse_body(raw)
    assert err.value.message == message
    assert status(err.value).code == 3  # InvalidArgument


def test_bytes_after_the_first_value_are_ignored_as_gos_decoder_does() -> None:
    assert parse_body(b'  {"key":"Zm9v"} trailing') == {"key": "Zm9v"}
    assert parse_body(b"") == {}


@pytest.mark.parametrize(("value", "kind"), [(1, "number"), (True, "bool"), ({}, "object")])
def test_a_non_string_bytes_field_names_the_json_type(value: object, kind: str) -> None:
    with pytest.raises(EtcdError) as err:
        b64decode(value)
    assert err.value.message == f"json: cannot unmarshal {kind} into Go value of type []uint8"
