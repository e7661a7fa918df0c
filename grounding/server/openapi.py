"""``GET /openapi.json``: the server's OpenAPI 3.1 description, generated from
the pydantic models the server itself validates and answers with.

The request body is :class:`grounding.request.ChatRequest`'s own JSON schema
(less the fields only the Python API takes), responses are
:class:`~grounding.response.ChatCompletion` and
:class:`~grounding.response.ChatCompletionChunk`, routers are
:class:`~grounding.routing.routers.Router`: a field added to any of them
appears here by itself.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from ..request import ChatRequest
from ..response import ChatCompletion, ChatCompletionChunk

__all__ = ["openapi_document", "ErrorBody", "ModelObject", "ModelList"]

_REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """Every failure: OpenAI's error body."""

    error: ErrorDetail


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


class RouterList(BaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]


class RouterDeleted(BaseModel):
    id: str
    object: Literal["router.deleted"] = "router.deleted"
    deleted: bool


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    store: dict[str, Any] | None = None
    routers: Any = None
    auth: str


_ERRORS = {
    "400": "a bad parameter (`param` names it) or a body that is not JSON",
    "401": "a missing or wrong API key",
    "403": "the key may not do this",
    "404": "an unknown model, router or URL",
    "405": "a method the path does not take",
    "409": "the router exists, or comes from the config file",
    "413": "the body is larger than `server.max_body_bytes`",
    "429": "too many concurrent requests for this key, or an upstream rate limit",
    "502": "an upstream failed or answered something unreadable",
    "503": "the router store is unavailable",
    "504": "an upstream missed its deadline",
}


#: One server-sent event (OpenAPI 3.1: the stream's ``schema`` describes each event).
_SSE_EVENT = {"type": "object", "required": ["data"], "properties": {"data": {
    "type": "string", "description": "a chat.completion.chunk (JSON), then `[DONE]`; or, if the answer fails "
                                     "after it started, one error body (JSON) and no `[DONE]`"}}}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: {"description": _ERRORS[code], "content": {"application/json": {"schema": _ref("ErrorBody")}}}
            for code in codes}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document(server_only_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``grounding serve`` (``server_only_fields``: request
    fields the server refuses, left out of its request schema)."""
    from ..routing.routers import Router

    models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (ChatRequest, "validation"), (ChatCompletion, "serialization"), (ChatCompletionChunk, "serialization"),
        (ErrorBody, "serialization"), (ModelObject, "serialization"), (ModelList, "serialization"),
        (Router, "validation"), (RouterList, "serialization"), (RouterDeleted, "serialization"),
        (Health, "serialization"),
    ]
    _, top = models_json_schema(models, ref_template=_REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    request = schemas["ChatRequest"]
    for name in server_only_fields:
        request.get("properties", {}).pop(name, None)
    # `model` may be left out: the server's default model answers.
    request["required"] = [f for f in request.get("required", []) if f != "model"]
    if not request["required"]:
        request.pop("required")
    model_param = {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    router_body = {"required": True, "content": {"application/json": {"schema": _ref("Router")}}}
    stored = _json("the router as stored", {"type": "object"})
    paths = {
        "/v1/chat/completions": {"post": {
            "operationId": "createChatCompletion",
            "summary": "A grounded chat completion (OpenAI's format, plus web_search and routing fields)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ChatRequest")}}},
            "responses": {
                "200": {"description": "the completion, or with `stream: true` its chunks as server-sent events "
                                       "(`data: <chat.completion.chunk>` ... `data: [DONE]`)",
                        "content": {"application/json": {"schema": _ref("ChatCompletion")},
                                    "text/event-stream": {"schema": _SSE_EVENT}}},
                **_errors("400", "401", "403", "404", "413", "429", "502", "503", "504"),
            },
        }},
        "/v1/models": {"get": {"operationId": "listModels", "summary": "auto, routers, the pool and local",
                               "responses": {"200": _json("the models", _ref("ModelList")), **_errors("401")}}},
        "/v1/models/{model}": {"get": {
            "operationId": "retrieveModel", "parameters": [model_param],
            "responses": {"200": _json("the model", _ref("ModelObject")), **_errors("401", "404")}}},
        "/v1/routers": {
            "get": {"operationId": "listRouters", "responses": {"200": _json("the routers", _ref("RouterList")),
                                                                 **_errors("401", "503")}},
            "post": {"operationId": "createRouter", "requestBody": router_body,
                     "responses": {"201": stored, **_errors("400", "401", "403", "409", "413", "503")}},
        },
        "/v1/routers/{name}": {
            "get": {"operationId": "retrieveRouter", "parameters": [name_param],
                    "responses": {"200": stored, **_errors("401", "404", "503")}},
            "put": {"operationId": "replaceRouter", "parameters": [name_param], "requestBody": router_body,
                    "responses": {"200": stored, "201": stored, **_errors("400", "401", "403", "409", "413", "503")}},
            "delete": {"operationId": "deleteRouter", "parameters": [name_param],
                       "responses": {"200": _json("deleted", _ref("RouterDeleted")),
                                     **_errors("401", "403", "404", "409", "503")}},
        },
        "/health": {"get": {"operationId": "health", "security": [],
                            "responses": {"200": _json("the server's state", _ref("Health"))}}},
        "/openapi.json": {"get": {"operationId": "openapi", "security": [],
                                  "responses": {"200": _json("this document", {"type": "object"})}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "grounding serve", "version": __version__,
                 "description": "An OpenAI-compatible chat-completions API whose answers are grounded in web "
                                "search, with citations as `url_citation` annotations."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }

