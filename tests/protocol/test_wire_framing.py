from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamlog.protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    FrameDecoder,
    FrameTooLargeError,
    encode_frame,
)


def test_encode_frame_prefixes_big_endian_size() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"
    assert encode_frame(memoryview(b"x" * 300)) == b"\x00\x00\x01\x2c" + b"x" * 300


def test_default_limit_is_kafkas_socket_request_max_bytes() -> None:
    assert DEFAULT_MAX_FRAME_SIZE == 104_857_600
    assert FrameDecoder().max_frame_size == DEFAULT_MAX_FRAME_SIZE


def test_many_frames_in_one_feed() -> None:
    decoder = FrameDecoder()
    data = encode_frame(b"one") + encode_frame(b"") + encode_frame(b"three")
    assert decoder.feed(data) == [b"one", b"", b"three"]
    assert decoder.buffered == 0


def test_partial_feeds_byte_by_byte() -> None:
    decoder = FrameDecoder()
    data = encode_frame(b"hello") + encode_frame(b"world!")
    out: list[bytes] = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
        if i < 8:
            assert out == []
    assert out == [b"hello", b"world!"]
    assert decoder.buffered == 0


def test_partial_frame_is_held_until_complete() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00\x00\x00\x05he") == []
    assert decoder.buffered == 6
    assert decoder.feed(b"llo\x00\x00") == [b"hello"]
    assert decoder.buffered == 2
    assert decoder.feed(b"\x00\x01!") == [b"!"]
    assert decoder.buffered == 0


def test_accepts_bytearray_and_memoryview_and_copies_frames() -> None:
    decoder = FrameDecoder()
    chunk = bytearray(encode_frame(b"abc") + b"\x00\x00")
    frames = decoder.feed(chunk)
    chunk[4:7] = b"XYZ"  # the caller reuses its buffer; frames must not change
    assert frames == [b"abc"]
    assert type(frames[0]) is bytes
    assert decoder.feed(memoryview(b"\x00\x02ok")) == [b"ok"]


@given(
    frames=st.lists(st.binary(max_size=40), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_any_chunking_yields_the_same_frames(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(f) for f in frames)
    points = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    decoder = FrameDecoder(max_frame_size=64)
    out: list[bytes] = []
    for start, stop in zip(points, points[1:], strict=False):
        out += decoder.feed(stream[start:stop])
    assert out == frames
    assert decoder.buffered == 0


def test_frame_at_the_limit_is_accepted() -> None:
    decoder = FrameDecoder(max_frame_size=10)
    assert decoder.feed(encode_frame(b"x" * 10)) == [b"x" * 10]


def test_oversized_frame_is_rejected_before_its_body_arrives() -> None:
    decoder = FrameDecoder(max_frame_size=10)
    with pytest.raises(FrameTooLargeError) as info:
        decoder.feed(b"\x00\x00\x00\x0b")
    assert info.value.size == 11
    assert info.value.max_frame_size == 10
    assert decoder.buffered == 0


def test_oversize_after_good_frames_in_the_same_feed_still_raises() -> None:
    decoder = FrameDecoder(max_frame_size=10)
    with pytest.raises(FrameTooLargeError):
        decoder.feed(encode_frame(b"ok") + b"\x00\x01\x00\x00")


def test_negative_length_is_rejected() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameTooLargeError) as info:
        decoder.feed(struct.pack(">i", -1))
    assert info.value.size == -1
    assert "negative" in str(info.value)


def test_http_request_on_the_kafka_port_is_rejected() -> None:
    # "GET " read as a big-endian int32 is 0x47455420 = 1,195,725,856 bytes.
    decoder = FrameDecoder(max_frame_size=DEFAULT_MAX_FRAME_SIZE)
    with pytest.raises(FrameTooLargeError) as info:
        decoder.feed(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert info.value.size == 0x47455420


def test_http_request_split_across_feeds_is_rejected_at_the_fourth_byte() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"GE") == []
    with pytest.raises(FrameTooLargeError):
        decoder.feed(b"T / HTTP/1.1\r\n")


def test_decoder_stays_failed_after_an_oversized_frame() -> None:
    decoder = FrameDecoder(max_frame_size=4)
    with pytest.raises(FrameTooLargeError):
        decoder.feed(b"\x00\x00\x00\x05")
    with pytest.raises(FrameTooLargeError):
        decoder.feed(encode_frame(b"ok"))


def test_limit_can_be_raised_between_feeds() -> None:
    # A broker allows small frames until the client has authenticated.
    decoder = FrameDecoder(max_frame_size=8)
    assert decoder.feed(encode_frame(b"12345678")) == [b"12345678"]
    decoder.max_frame_size = 1024
    assert decoder.feed(encode_frame(b"y" * 100)) == [b"y" * 100]


def test_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(max_frame_size=-1)
