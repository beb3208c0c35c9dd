"""``GET /openapi.json``: the HTTP API described in OpenAPI 3.1 (checked by
``openapi-spec-validator`` in the tests)."""

from __future__ import annotations

from typing import Any

from bot.web.api import STATUS

# Codes of requests refused before the check: no image, not multipart, token, route, method.
REQUEST_CODES = {"no_file", "bad_request", "unauthorized", "not_found", "method_not_allowed"}

_ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str, *, retry: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ERROR}},
    }
    if retry:
        out["headers"] = {
            "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
        }
    return out


def spec() -> dict[str, Any]:
    codes = sorted({p.value for p in STATUS} | REQUEST_CODES)
    box = {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
           "description": "x1, y1, x2, y2 in image pixels (x2, y2 exclusive)"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "deepfake-bot",
            "version": "1",
            "description": "Find faces in an image and score each for face manipulation. "
            "Images are analysed in memory and never stored.",
        },
        "paths": {
            "/v1/check": {
                "post": {
                    "summary": "Check one image",
                    "operationId": "check",
                    "security": [{}, {"bearer": []}],
                    "parameters": [{
                        "name": "annotate", "in": "query", "required": False,
                        "description": "1: add the annotated image (PNG, base64)",
                        "schema": {"type": "string", "enum": ["0", "1"]},
                    }],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"file": {"type": "string",
                                                            "format": "binary"}},
                                    "required": ["file"],
                                }
                            },
                            "image/*": {"schema": {"type": "string", "format": "binary"}},
                            "video/*": {"schema": {"type": "string", "format": "binary"}},
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "A verdict. With 'Accept: image/png', the annotated "
                            "image instead (headers X-Verdict and X-P-Fake).",
                            "content": {
                                "application/json": {"schema": {"oneOf": [
                                    {"$ref": "#/components/schemas/Check"},
                                    {"$ref": "#/components/schemas/VideoCheck"},
                                ]}},
                                "image/png": {"schema": {"type": "string", "format": "binary"}},
                            },
                        },
                        "400": _error("no image in the request, not valid multipart, or the "
                                      "upload broke off"),
                        "401": _error("missing or wrong bearer token (when one is set)"),
                        "413": _error("image over the size (bytes or pixels) limit"),
                        "415": _error("not an image, or one that cannot be read"),
                        "422": _error("no face found, or faces too small to judge"),
                        "429": _error("this client's rate limit", retry=True),
                        "500": _error("our fault"),
                        "503": _error("busy, shutting down, or the detector server unavailable "
                                      "(code detector_unavailable): try again", retry=True),
                    },
                }
            },
            "/v1/model": {
                "get": {
                    "summary": "The model card",
                    "operationId": "model",
                    "responses": {"200": {
                        "description": "name, bands, measured figures, limits",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }},
                }
            },
            "/v1/model-card": {
                "get": {
                    "summary": "The model card as text",
                    "operationId": "modelCard",
                    "responses": {"200": {
                        "description": "text", "content": {"text/plain": {"schema": {
                            "type": "string"}}},
                    }},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {"200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }},
                }
            },
            "/healthz": {"get": {"summary": "Liveness", "operationId": "healthz",
                                 "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"summary": "Readiness", "operationId": "readyz",
                                "responses": {"200": {"description": "ready"},
                                              "503": {"description": "starting or stopping"}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "enum": codes},
                            "message": {"type": "string",
                                        "description": "plain words, safe to show"},
                        },
                    }},
                },
                "Face": {
                    "type": "object",
                    "required": ["box", "p_fake", "verdict"],
                    "properties": {
                        "box": box,
                        "p_fake": {"type": "number", "minimum": 0, "maximum": 1},
                        "verdict": {"$ref": "#/components/schemas/Verdict"},
                    },
                },
                "Verdict": {
                    "type": "string",
                    "enum": ["no_manipulation_detected", "uncertain", "likely_manipulated"],
                },
                "Check": {
                    "type": "object",
                    "description": "The object of 'deepfake-bot check --json', plus the "
                    "model, image size, timings and the verdict in words.",
                    "required": ["verdict", "p_fake", "faces", "model", "timings_ms"],
                    "properties": {
                        "path": {"type": ["string", "null"],
                                 "description": "the uploaded file's name"},
                        "kind": {"const": "image"},
                        "verdict": {"$ref": "#/components/schemas/Verdict"},
                        "p_fake": {"type": "number", "minimum": 0, "maximum": 1,
                                   "description": "of the most suspicious face"},
                        "faces": {"type": "array",
                                  "items": {"$ref": "#/components/schemas/Face"}},
                        "too_small": {"type": "array", "items": box},
                        "faces_too_small": {"type": "integer"},
                        "error": {"type": "null"},
                        "model": {"type": "string"},
                        "width": {"type": "integer"},
                        "height": {"type": "integer"},
                        "timings_ms": {"type": "object",
                                       "additionalProperties": {"type": "number"}},
                        "label": {"type": "string"},
                        "headline": {"type": "string"},
                        "caveat": {"type": "string"},
                        "annotated_png": {"type": "string", "contentEncoding": "base64"},
                    },
                },
                "Track": {
                    "type": "object",
                    "description": "One face followed over the sampled frames; p_fake is the "
                    "mean over its frames (the served rule), beside max, median, top-third mean.",
                    "required": ["track", "p_fake", "frames", "first_s", "last_s",
                                 "boxes_sample"],
                    "properties": {
                        "track": {"type": "integer"},
                        "verdict": {"$ref": "#/components/schemas/Verdict"},
                        "p_fake": {"type": "number"}, "p_max": {"type": "number"},
                        "p_median": {"type": "number"}, "p_top_mean": {"type": "number"},
                        "share_fake": {"type": "number"},
                        "frames": {"type": "integer"},
                        "first_s": {"type": "number"}, "last_s": {"type": "number"},
                        "boxes_sample": {"type": "array", "items": {
                            "type": "object",
                            "properties": {"t_s": {"type": "number"}, "box": box},
                        }},
                        "frame_scores": {"type": "array", "items": {
                            "type": "array", "items": {"type": "number"}}},
                    },
                },
                "VideoCheck": {
                    "type": "object",
                    "description": "A video or animation: the verdict of the most suspicious "
                    "face track ('deepfake-bot check --json' on a video, plus words).",
                    "required": ["kind", "verdict", "p_fake", "tracks", "model"],
                    "properties": {
                        "path": {"type": ["string", "null"]},
                        "kind": {"const": "video"},
                        "verdict": {"$ref": "#/components/schemas/Verdict"},
                        "p_fake": {"type": "number"},
                        "rule": {"type": "string", "enum": ["mean"]},
                        "deciding_track": {"type": "integer"},
                        "tracks": {"type": "array",
                                   "items": {"$ref": "#/components/schemas/Track"}},
                        "frames_sampled": {"type": "integer"},
                        "frames_with_faces": {"type": "integer"},
                        "faces_too_small": {"type": "integer"},
                        "duration_s": {"type": "number"},
                        "width": {"type": "integer"}, "height": {"type": "integer"},
                        "container": {"type": "string"},
                        "model": {"type": "string"},
                        "timings_ms": {"type": "object",
                                       "additionalProperties": {"type": "number"}},
                        "error": {"type": "null"},
                        "label": {"type": "string"}, "headline": {"type": "string"},
                        "caveat": {"type": "string"},
                        "annotated_png": {"type": "string", "contentEncoding": "base64",
                                          "description": "the contact sheet"},
                    },
                },
            },
        },
    }
