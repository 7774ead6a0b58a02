"""Each rule of etcd 3.4's gateway decoding, as measured against etcd 3.4.23.

The expected messages are etcd's own answers to the same bodies (HTTP 400, code 3).
"""

from __future__ import annotations

import pytest

from node.api import codec, gojson
from node.api.errors import status
from node.errors import ErrTooManyOps, EtcdError
from node.mvcc import requests as rq


def refused(fn: object, *args: object) -> str:
    assert callable(fn)
    with pytest.raises(EtcdError) as err:
        fn(*args)
    assert status(err.value).code == 3
    return err.value.message


def body(text: str | bytes) -> dict[str, object]:
    return codec.parse_body(text.encode() if isinstance(text, str) else text)


# ---- int64 / uint64 / int32 ------------------------------------------------------------------
INT64_TOP = str(2**63 - 1)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ('"10"', 10),
        ("10", 10),
        ('" 1"', 1),
        ('"1 "', 1),
        ('"-0"', 0),
        ("-0", 0),
        ('"null"', 0),
        ("null", 0),
        (f'"{INT64_TOP}"', 2**63 - 1),
        (f'"-{2**63}"', -(2**63)),
    ],
)
def test_int64_fields_accept_what_gos_decoder_accepts(raw: str, value: int) -> None:
    assert codec.range_request(body(f'{{"key":"Zm9v","limit":{raw}}}')).limit == value


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('"+1"', "invalid character '+' looking for beginning of value"),
        ('"01"', "invalid character '1' after top-level value"),
        ('"\u0661"', "invalid character '\u00d9' looking for beginning of value"),
        ('"1_0"', "invalid character '_' after top-level value"),
        ('"0x10"', "invalid character 'x' after top-level value"),
        ('"1 2"', "invalid character '2' after top-level value"),
        ('""', "unexpected end of JSON input"),
        ('"\\u0031"', "invalid character '\\\\' looking for beginning of value"),
        ('"1e3"', "json: cannot unmarshal number 1e3 into Go value of type int64"),
        ("1e3", "json: cannot unmarshal number 1e3 into Go value of type int64"),
        ("1.0", "json: cannot unmarshal number 1.0 into Go value of type int64"),
        ('"true"', "json: cannot unmarshal bool into Go value of type int64"),
        ("true", "json: cannot unmarshal bool into Go value of type int64"),
        ("[]", "json: cannot unmarshal array into Go value of type int64"),
        ("{}", "json: cannot unmarshal object into Go value of type int64"),
        (
            f'"{2**63}"',
            f"json: cannot unmarshal number {2**63} into Go value of type int64",
        ),
        (
            str(2**64),
            f"json: cannot unmarshal number {2**64} into Go value of type int64",
        ),
        (
            f'"-{2**63 + 1}"',
            f"json: cannot unmarshal number -{2**63 + 1} into Go value of type int64",
        ),
    ],
)
def test_int64_fields_refuse_what_gos_decoder_refuses_with_its_message(
    raw: str, message: str
) -> None:
    assert refused(codec.range_request, body(f'{{"key":"Zm9v","limit":{raw}}}')) == message


def test_every_int64_field_is_bounded_not_only_limit() -> None:
    big = f'"{2**63}"'
    for make, text in [
        (codec.lease_grant_request, f'{{"TTL":{big}}}'),
        (codec.lease_grant_request, f'{{"TTL":"1","ID":{big}}}'),
        (codec.lease_id, f'{{"ID":"{2**64}"}}'),
        (codec.compaction_request, f'{{"revision":"{2**64}"}}'),
        (codec.put_request, f'{{"key":"Zm9v","lease":{big}}}'),
        (codec.watch_create_request, f'{{"key":"Zm9v","start_revision":{big}}}'),
        (codec.hash_kv_revision, f'{{"revision":{big}}}'),
    ]:
        assert "into Go value of type int64" in refused(make, body(text))


def test_member_ids_are_uint64() -> None:
    top = str(2**64 - 1)
    assert codec.alarm_request(body(f'{{"memberID":"{top}"}}')).member_id == 2**64 - 1
    assert codec.move_leader_target(body(f'{{"targetID":"{top}"}}')) == 2**64 - 1
    assert refused(codec.alarm_request, body('{"memberID":"-1"}')) == (
        "json: cannot unmarshal number -1 into Go value of type uint64"
    )
    assert refused(codec.move_leader_target, body(f'{{"targetID":{2**64}}}')) == (
        f"json: cannot unmarshal number {2**64} into Go value of type uint64"
    )


# ---- enums -----------------------------------------------------------------------------------
def test_enums_take_exact_names_and_any_int32_number() -> None:
    req = codec.range_request(body('{"key":"Zm9v","sort_order":"DESCEND","sort_target":99}'))
    assert (req.sort_order, req.sort_target) == (rq.SortOrder.DESCEND, 99)
    assert codec.alarm_request(body('{"action":2}')).action == rq.AlarmAction.DEACTIVATE


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('"mod"', 'unknown value "mod" for enum etcdserverpb.RangeRequest_SortTarget'),
        ('"99"', 'unknown value "99" for enum etcdserverpb.RangeRequest_SortTarget'),
        (
            '"\\u004dOD"',
            'unknown value "\\\\u004dOD" for enum etcdserverpb.RangeRequest_SortTarget',
        ),
        (
            "2147483648",
            "json: cannot unmarshal number 2147483648 into Go value of type "
            "etcdserverpb.RangeRequest_SortTarget",
        ),
        (
            "1.0",
            "json: cannot unmarshal number 1.0 into Go value of type "
            "etcdserverpb.RangeRequest_SortTarget",
        ),
    ],
)
def test_enum_values_outside_names_and_int32_are_refused(raw: str, message: str) -> None:
    text = f'{{"key":"Zm9v","sort_target":{raw}}}'
    assert refused(codec.range_request, body(text)) == message


def test_a_repeated_enum_given_as_one_name_is_refused_as_jsonpb_does() -> None:
    assert refused(codec.watch_create_request, body('{"filters":"NOPUT"}')) == (
        'invalid target "slice" for enum etcdserverpb.WatchCreateRequest_FilterType'
    )
    assert codec.watch_create_request(body('{"filters":["NOPUT",1]}')).filters == [0, 1]


# ---- base64 ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "data"),
    [
        ("Zm9v", b"foo"),
        ("Zm9=", b"fo"),  # non-zero trailing bits pass: Go's StdEncoding is not Strict
        ("Zm9v\\n", b"foo"),  # line breaks are skipped anywhere
        ("Zm\\r\\n9v", b"foo"),
        ("Zg=\\n=", b"f"),
        ("", b""),
    ],
)
def test_base64_decodes_as_gos_std_encoding(text: str, data: bytes) -> None:
    assert codec.put_request(body(f'{{"key":"{text}"}}')).key == data


@pytest.mark.parametrize(
    ("text", "byte"),
    [
        ("Zm9v=", 4),  # the bad padding of issue 18 finding 7
        ("Zm9", 0),
        ("Zm9vYg", 4),
        ("Zm9vYg=", 7),
        ("Zm9vYg===", 8),
        ("Zm9vYg==Zm9v", 8),
        ("=Zm9v", 0),
        ("-_-_", 0),  # the URL alphabet is not Std
        ("Zm 9v", 2),
        ("Zm9v\\t", 4),
        ("Zm9v\u00e9", 4),
    ],
)
def test_base64_errors_name_the_byte_go_names(text: str, byte: int) -> None:
    message = refused(codec.put_request, body(f'{{"key":"{text}"}}'))
    assert message == f"illegal base64 data at input byte {byte}"


def test_bytes_fields_take_arrays_of_numbers_as_go_does() -> None:
    assert codec.put_request(body('{"key":[102,111,111]}')).key == b"foo"
    assert codec.put_request(body('{"key":[null]}')).key == b"\x00"
    assert refused(codec.put_request, body('{"key":[256]}')) == (
        "json: cannot unmarshal number 256 into Go value of type uint8"
    )
    assert refused(codec.put_request, body('{"key":["a"]}')) == (
        "json: cannot unmarshal string into Go value of type uint8"
    )


# ---- names, nulls, unknown fields, oneofs ------------------------------------------------------
def test_camel_case_names_are_accepted_and_win_over_proto_names() -> None:
    req = codec.range_request(
        body('{"key":"Zm9v","rangeEnd":"Zm9w","range_end":"AA==","countOnly":true}')
    )
    assert (req.range_end, req.count_only) == (b"fop", True)
    txn = codec.txn_request(body('{"success":[{"requestPut":{"key":"Zm9v","prevKv":true}}]}'))
    assert txn.success == [rq.PutRequest(key=b"foo", prev_kv=True)]


def test_null_means_unset_and_unknown_fields_are_ignored() -> None:
    req = codec.range_request(body('{"key":"Zm9v","limit":null,"bogus":[1,{"x":2}]}'))
    assert req == rq.RangeRequest(key=b"foo")
    assert codec.parse_body(b"null") == {}
    assert codec.parse_body(b"  ") == {}


def test_compare_lists_refuse_non_objects_instead_of_dropping_them() -> None:
    text = '{"compare":[1,"x"],"success":[{"request_put":{"key":"dHg=","value":"eA=="}}]}'
    assert refused(codec.txn_request, body(text)) == (
        "json: cannot unmarshal number into Go value of type map[string]json.RawMessage"
    )
    assert refused(codec.txn_request, body('{"success":{}}')) == (
        "json: cannot unmarshal object into Go value of type []json.RawMessage"
    )


@pytest.mark.parametrize(
    "text", ['{"success":[{}]}', '{"success":[null]}', '{"failure":[{"request_range":null}]}']
)
def test_an_empty_request_op_is_etcds_key_not_found(text: str) -> None:
    assert refused(codec.txn_request, body(text)) == "etcdserver: key not found"


def test_a_null_compare_is_an_empty_one() -> None:
    empty = rq.Compare(key=b"", target=rq.CompareTarget.VERSION)  # proto zero values
    assert codec.txn_request(body('{"compare":[null]}')).compare == [empty]


@pytest.mark.parametrize(
    "text",
    [
        '{"success":[{"request_range":{"key":"Zm9v"},"request_put":{"key":"Zm9v"}}]}',
        '{"compare":[{"key":"Zm9v","version":"1","value":"YmFy"}]}',
    ],
)
def test_two_members_of_one_oneof_are_refused(text: str) -> None:
    assert "more than one field of a oneof" in refused(codec.txn_request, body(text))


def test_txns_nested_deeper_than_etcds_op_budget_are_refused_while_decoding() -> None:
    inner = '{"request_range":{"key":"Zm9v"}}'
    for _ in range(codec.MAX_TXN_NESTING):
        inner = f'{{"request_txn":{{"success":[{inner}]}}}}'
    assert refused(codec.txn_request, body(f'{{"success":[{inner}]}}')) == ErrTooManyOps.message


# ---- JSON text ----------------------------------------------------------------------------------
def test_nesting_up_to_gos_limit_parses_without_recursion() -> None:
    depth = gojson.MAX_DEPTH - 1  # the body object is one more level
    text = '{"key":"Zm9v","bogus":' + "[" * depth + "]" * depth + "}"
    assert codec.range_request(body(text)).key == b"foo"
    deep_key = '{"key":' + "[" * 1000 + "]" * 1000 + "}"
    assert refused(codec.range_request, body(deep_key)) == (
        "json: cannot unmarshal array into Go value of type uint8"
    )


@pytest.mark.parametrize("depth", [gojson.MAX_DEPTH, 100_000])
def test_nesting_past_gos_limit_is_gos_max_depth_error(depth: int) -> None:
    text = '{"bogus":' + "[" * depth + "]" * depth + "}"
    assert refused(codec.parse_body, text.encode()) == "invalid character '[' exceeded max depth"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"a":NaN}', "invalid character 'N' looking for beginning of value"),
        (b'{"a":-Infinity}', "invalid character 'I' in numeric literal"),
        (b'{"a":1.}', "invalid character '}' after decimal point in numeric literal"),
        (b'{"a":1e}', "invalid character '}' in exponent of numeric literal"),
        (b'{"a":tru}', "invalid character '}' in literal true (expecting 'e')"),
        (b'{"a":"\\u12x4"}', "invalid character 'x' in \\u hexadecimal character escape"),
        (b'{"a":"x\x01"}', "invalid character '\\x01' in string literal"),
        (b'{"key":"Zm9v"\xff}', "invalid character '\u00ff' after object key:value pair"),
        (b"\xef\xbb\xbf{}", "invalid character '\u00ef' looking for beginning of value"),
    ],
)
def test_syntax_errors_outside_the_fast_path_use_gos_wording(raw: bytes, message: str) -> None:
    assert refused(codec.parse_body, raw) == message


def test_invalid_utf8_inside_strings_becomes_a_replacement_character() -> None:
    assert refused(codec.put_request, body(b'{"key":"Zm9v\xff"}')) == (
        "illegal base64 data at input byte 4"
    )
    assert codec.parse_body(b'{"k\xffey":"Zm9v"}') == {"k\ufffdey": "Zm9v"}


def test_stream_messages_are_read_one_at_a_time_from_bytes() -> None:
    data = '{"ID":"1"} {"ID":"\u00e9"}'.encode()
    first = codec.next_message(data)
    assert first == ({"ID": "1"}, 10)
    assert codec.next_message(data[:-3], first[1]) is None  # split inside a character
    assert codec.next_message(data, first[1]) == ({"ID": "\u00e9"}, len(data))
    assert codec.next_message(b"12", 0) is None  # a number may still grow
    assert refused(codec.next_message, b'{"ID":1} x', 8) == (
        "invalid character 'x' looking for beginning of value"
    )


# ---- nothing but EtcdError escapes ------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 200_000,
        b'{"key":' + b"{" * 50_000,
        b'{"key":"\\ud800\\udc00\\ud800"}',
        b'{"compare":[{"key":"Zm9v","target":"\xff"}]}',
        b'{"success":[{"request_txn":[[[[]]]]}]}',
        b'{"create_request":"x"}',
        b'{"cancel_request":7}',
    ],
)
def test_hostile_bodies_raise_only_etcd_errors(raw: bytes) -> None:
    for decode in (
        codec.txn_request,
        codec.range_request,
        codec.put_request,
        codec.watch_request,
        codec.alarm_request,
    ):
        try:
            decode(codec.parse_body(raw))
        except EtcdError:
            pass
