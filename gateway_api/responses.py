"""Service answers as HTTP responses: the one place routers turn an Answer into one."""

from __future__ import annotations

from typing import assert_never

from fastapi.responses import JSONResponse, Response, StreamingResponse

from gateway_api.services.answers import Answer, EventStreamAnswer, JsonAnswer

EVENT_STREAM = "text/event-stream"


def to_response(answer: Answer) -> Response:
    if isinstance(answer, JsonAnswer):
        return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)
    if isinstance(answer, EventStreamAnswer):
        if isinstance(answer.frames, bytes):  # complete already (a cache replay)
            return Response(answer.frames, media_type=EVENT_STREAM, headers=answer.headers)
        return StreamingResponse(answer.frames, media_type=EVENT_STREAM, headers=answer.headers)
    assert_never(answer)
