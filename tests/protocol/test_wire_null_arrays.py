"""A null array (count -1) where Kafka's schema allows none is a malformed request.

kio reads such an array as ``None``; handlers and ``error_response_for`` iterate it and
raise. The decoder refuses it, as Kafka's parser does, so no handler ever sees it; where
the schema allows null (Metadata's topics, OffsetFetch's topics, DescribeConfigs' keys,
CreatePartitions' assignments) the request decodes and can still be answered.
"""

from __future__ import annotations

import pytest

from streamlog.protocol import (
    ApiKey,
    ErrorCode,
    MalformedRequestError,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    error_response_for,
)

from .null_requests import NullArrayRequest, null_array_requests

CASES = null_array_requests()


def test_every_request_with_an_array_is_covered() -> None:
    # 27 APIs over their versions; ApiVersions, Heartbeat, InitProducerId, SaslHandshake,
    # SaslAuthenticate, AddOffsetsToTxn and EndTxn have no arrays in their requests. The
    # counts guard against the generator silently skipping fields.
    apis = {case.api_key for case in CASES}
    assert len(apis) == 20
    assert len(CASES) == 200
    assert sum(case.nullable for case in CASES) == 27


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_null_array_is_refused_or_answerable(case: NullArrayRequest) -> None:
    frame = encode_request(case.request, correlation_id=77, client_id="nulls")[4:]
    if not case.nullable:
        with pytest.raises(MalformedRequestError) as info:
            decode_request(frame)
        assert info.value.correlation_id == 77
        if case.api_key == ApiKey.PRODUCE:
            # Produce has a decoder of its own (zero-copy), with its own words.
            assert "count -1" in str(info.value) or "null" in str(info.value)
        else:
            assert f"non-nullable field {case.path[-1]!r} is null" in str(info.value)
        return
    decoded = decode_request(frame)
    assert decoded.correlation_id == 77
    response = error_response_for(decoded, ErrorCode.UNKNOWN_SERVER_ERROR)
    correlation_id, parsed = decode_response(
        encode_response(decoded, response)[4:], case.api_key, case.version
    )
    assert correlation_id == 77
    assert parsed == response
