"""The stream splitter: the same messages whatever the chunking, bounded, UTF-8 safe."""

from __future__ import annotations

import pytest

from node.api.jsonstream import MessageSplitter, MessageTooLarge

BODY = '{"a":"x\\"}{"} [1,[2]] "s\\\\" 5 true {"k":"é€😀"}\n{}'.encode()
MESSAGES = ['{"a":"x\\"}{"}', "[1,[2]]", '"s\\\\"', "5", "true", '{"k":"é€😀"}', "{}"]


def split(data: bytes, step: int, limit: int = 1 << 30) -> tuple[list[str], bool]:
    splitter = MessageSplitter(limit)
    out: list[str] = []
    for i in range(0, len(data), step):
        out += splitter.feed(data[i : i + step])
    rest, unfinished = splitter.end()
    return out + rest, unfinished


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 64, len(BODY)])
def test_every_chunking_yields_the_same_messages(step: int) -> None:
    # step 1 cuts every multi-byte character, every escape and every bracket pair
    assert split(BODY, step) == (MESSAGES, False)


def test_an_unfinished_message_is_reported_at_the_end_and_a_bare_scalar_is_not() -> None:
    assert split(b'{"a":1} {"b"', 1) == (['{"a":1}'], True)
    assert split(b' "open', 1) == ([], True)
    assert split(b" 12", 1) == (["12"], False)
    assert split(b"}", 1) == (["}"], False)  # the parser, not the splitter, refuses it


def test_invalid_utf8_reads_as_the_replacement_character() -> None:
    assert split(b'{"k":"\xff"}', 1) == (['{"k":"\ufffd"}'], False)


def test_a_message_longer_than_the_limit_is_refused_before_it_ends() -> None:
    splitter = MessageSplitter(1000)
    splitter.feed(b'{"key":"')
    for _ in range(9):
        splitter.feed(b"A" * 100)  # 908 characters so far: kept
    with pytest.raises(MessageTooLarge) as info:
        splitter.feed(b"A" * 100)
    assert 1000 < info.value.size <= 1100


def test_whitespace_between_messages_is_not_buffered() -> None:
    splitter = MessageSplitter(100)
    assert splitter.feed(b"{}") == ["{}"]
    for _ in range(1000):
        assert splitter.feed(b" " * 1000) == []
    assert not splitter.pending
