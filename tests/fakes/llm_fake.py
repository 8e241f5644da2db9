"""A local OpenAI-compatible chat completions server (the protocol DeepSeek,
OpenAI, LM Studio and Ollama share), for the ``requests``-based LLMClient.

``POST .../chat/completions`` with ``Authorization: Bearer <key>`` and
``{"model", "messages", "max_tokens", "temperature"}`` answers
``{"id", "object": "chat.completion", "created", "model", "choices":
[{"index", "message": {"role": "assistant", "content"}, "finish_reason"}],
"usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}``;
``GET .../models`` lists the model. Errors have OpenAI's shape,
``{"error": {"message", "type", "code"}}``; a wrong key is answered as OpenAI
does, with the key masked down to its last four characters.

Replies: queue exact texts with ``fake.replies.append("...")``; otherwise the
fake answers ``Respuesta a: <the last user message>``. Token counts are words
(whitespace-separated), enough to test the accounting. ``max_tokens`` cuts the
reply (``finish_reason: "length"``).

Modes: ``ok``; ``401``; ``429`` (rate_limit_exceeded, option ``retry_after``);
``quota`` (429 insufficient_quota, OpenAI's "out of credit"); ``500``; ``503``;
``slow`` (option ``delay``); ``malformed`` (200 with an HTML body); ``empty``
(200 with no choices).

By hand: ``python -m tests.fakes.llm_fake --port 8766 [--api-key K]``, then
Config ``llm_url`` = ``http://127.0.0.1:8766/v1/chat/completions``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.fakes.http_fake import FakeServer, RecordedRequest, Response, run_from_command_line

# Where OpenAI, LM Studio and Ollama serve it (/v1/...) and DeepSeek also without the /v1.
CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")


def error(status: int, message: str, type_: str, code: str | None, **headers: str) -> Response:
    return Response.json(status, {"error": {"message": message, "type": type_, "param": None, "code": code}}, **headers)


def mask(key: str) -> str:
    return f"{key[:3]}{'*' * max(0, len(key) - 7)}{key[-4:]}" if len(key) > 8 else "****"


class LLMFake(FakeServer):
    name = "llm"
    MODES = ("ok", "401", "429", "quota", "500", "503", "slow", "malformed", "empty")

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.replies: list[str] = []

    @property
    def chat_url(self) -> str:
        return f"{self.url}/v1/chat/completions"

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.api_requests() if r.path.endswith("/completions")]

    def handle(self, request: RecordedRequest) -> Response:
        if self.api_key is not None:
            given = request.headers.get("authorization", "")
            token = given[7:] if given.lower().startswith("bearer ") else ""
            if token != self.api_key:
                shown = mask(token) if token else "(none)"
                return error(401, f"Incorrect API key provided: {shown}.", "invalid_request_error", "invalid_api_key")
        mode = self.take_mode()
        if mode.name == "401":
            return error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        if mode.name == "429":
            return error(
                429,
                "Rate limit reached for requests. Please try again later.",
                "requests",
                "rate_limit_exceeded",
                **{"Retry-After": str(mode.options.get("retry_after", 1))},
            )
        if mode.name == "quota":
            return error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            )
        if mode.name in ("500", "503"):
            return error(int(mode.name), "The server had an error while processing your request.", "server_error", None)
        if mode.name == "slow":
            self.sleep(float(mode.options.get("delay", 5)))
        if mode.name == "malformed":
            return Response(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")

        if request.path in ("/v1/models", "/models") and request.method == "GET":
            return Response.json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        if request.path not in CHAT_PATHS or request.method != "POST":
            return error(404, f"Unknown request URL: {request.method} {request.path}.", "invalid_request_error", None)
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            return error(400, "'messages' is a required property", "invalid_request_error", None)
        if not body.get("model"):
            return error(400, "you must provide a model parameter", "invalid_request_error", None)
        if mode.name == "empty":
            return Response.json(200, self._completion(body, None, []))
        return Response.json(200, self._completion(body, self._reply(body["messages"]), None))

    def _reply(self, messages: list[dict[str, Any]]) -> str:
        with self._lock:
            if self.replies:
                return self.replies.pop(0)
        last_user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        return f"Respuesta a: {last_user}"

    @staticmethod
    def _completion(body: dict[str, Any], reply: str | None, choices: list | None) -> dict[str, Any]:
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        finish = "stop"
        if reply is not None:
            words = reply.split()
            limit = body.get("max_tokens")
            if isinstance(limit, int) and len(words) > limit:
                reply, finish = " ".join(words[:limit]), "length"
            choices = [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": finish}]
        completion_tokens = len(reply.split()) if reply else 0
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


if __name__ == "__main__":
    run_from_command_line(LLMFake, "Local fake of an OpenAI-compatible chat completions API.")
