"""ApiVersions: what this broker speaks, so clients can pick versions."""

from __future__ import annotations

from typing import Any

from streamlog.broker.context import BrokerContext, Session
from streamlog.protocol import DecodedRequest, ResponsePayload, api_versions_response

__all__ = ["handle_api_versions"]


async def handle_api_versions(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    body: Any = request.body
    # v3+ clients say who they are; keep it for logs and DescribeGroups.
    name = getattr(body, "client_software_name", None)
    if name and session.client_id is None:
        session.client_id = request.client_id
    return api_versions_response(request.api_version)
