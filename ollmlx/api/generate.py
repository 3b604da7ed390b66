"""POST /api/generate and POST /api/chat (spec §2, §3)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ollmlx.api.context import services
from ollmlx.api.schemas import ChatRequest, GenerateRequest
from ollmlx.api.streaming import join_text, ndjson
from ollmlx.api.wire import decode

router = APIRouter()


@router.post("/api/generate", openapi_extra={"requestBody": {"content": {"application/json": {
    "schema": GenerateRequest.model_json_schema(by_alias=True)}}}})
async def generate(request: Request) -> Response:
    req = decode(await request.body(), GenerateRequest)
    chunks = services(request).inference.generate(req)
    return await ndjson(chunks, req.stream is not False, join_text)


@router.post("/api/chat", openapi_extra={"requestBody": {"content": {"application/json": {
    "schema": ChatRequest.model_json_schema(by_alias=True)}}}})
async def chat(request: Request) -> Response:
    req = decode(await request.body(), ChatRequest)
    chunks = services(request).inference.chat(req)
    return await ndjson(chunks, req.stream is not False, lambda cs: join_text(cs, "message"))
