"""A real broker answers or closes on a null array, with one log line and no traceback."""

from __future__ import annotations

import socket

from streamlog.protocol import decode_response, encode_request
from tests.protocol.null_requests import null_array_requests

from .test_broker_process import api_versions, connect, recv_frame


def _answer_or_close(sock: socket.socket) -> bytes | None:
    """The response frame, or None if the broker closed the connection instead."""
    try:
        return recv_frame(sock)
    except (ConnectionError, OSError):
        return None


def test_every_null_array_is_answered_or_closed_with_one_line(broker) -> None:
    cases = null_array_requests()
    bystander = connect(broker)
    assert api_versions(bystander)[0] == 1
    closed = answered = 0
    for case in cases:
        sock = connect(broker)
        sock.sendall(encode_request(case.request, correlation_id=77, client_id="nulls"))
        frame = _answer_or_close(sock)
        sock.close()
        if frame is None:
            assert not case.nullable, f"{case.name}: a null Kafka allows closed the connection"
            closed += 1
            continue
        assert case.nullable, f"{case.name}: a null Kafka refuses was answered"
        correlation_id, _ = decode_response(frame, case.api_key, case.version)
        assert correlation_id == 77
        answered += 1
    assert (closed, answered) == (173, 27)
    # Another client was served all along, on a connection opened before.
    assert api_versions(bystander, correlation_id=2)[0] == 2
    bystander.close()
    logs = broker.logs()
    assert "Traceback" not in logs
    assert "Unhandled exception" not in logs
    lines = [line for line in logs.splitlines() if "closing connection from" in line]
    assert len(lines) == closed
    assert all("malformed request" in line for line in lines)
    assert sum("non-nullable field" in line for line in lines) == closed - 14  # Produce's own
