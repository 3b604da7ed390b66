"""POST /api/embed and POST /api/embeddings (spec §4, §5)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ollmlx.api.context import services
from ollmlx.api.schemas import EmbeddingsRequest, EmbedRequest
from ollmlx.api.streaming import JSONResponse
from ollmlx.api.wire import decode
from ollmlx.serve.embed import Embeddings

router = APIRouter()


def _service(request: Request) -> Embeddings:
    svc = services(request)
    return Embeddings(svc.store, svc.scheduler)


@router.post("/api/embed", openapi_extra={"requestBody": {"content": {"application/json": {
    "schema": EmbedRequest.model_json_schema(by_alias=True)}}}})
async def embed(request: Request) -> Response:
    req = decode(await request.body(), EmbedRequest)
    return JSONResponse(await _service(request).embed(req))


@router.post("/api/embeddings", openapi_extra={"requestBody": {"content": {"application/json": {
    "schema": EmbeddingsRequest.model_json_schema(by_alias=True)}}}})
async def embeddings(request: Request) -> Response:
    req = decode(await request.body(), EmbeddingsRequest)
    return JSONResponse(await _service(request).embeddings(req))
