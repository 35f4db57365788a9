"""A stub OpenAI-compatible chat-completions server on loopback, for judge tests and benchmarks.

It reads the judge's prompt, finds the responses shown as ``[Response A]`` and
``[Response B]`` and answers as its ``mode`` says:

- ``fair``: the response containing ``GOOD`` (by content, whatever its position);
- ``first``: always ``A`` (order-biased: it prefers the first position);
- ``malformed``: text with no verdict in it; ``not_json``: a body that is not JSON.

A tagging prompt (its ``{tags}`` block: lines ``tag: A) value, B) value…``) is answered
``tag: letter`` per line, choosing the value the conversation names as ``tag=value``
(else option A); with ``tag_mode="malformed"`` the answer is prose with no tags in it.

``script`` gives statuses for the first requests in order (``429`` carries
``Retry-After: retry_after``, a 3xx ``Location: redirect_to``; then 200s); ``delay`` seconds per request. It records
every request (headers included) and the most requests it served at once.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class JudgeStub:
    mode: str = "fair"
    tag_mode: str = "hinted"
    delay: float = 0.0
    script: list[int] = field(default_factory=list)
    retry_after: str = "0"
    logprobs: bool = False
    redirect_to: str = ""
    requests: list[dict] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def answer_text(self, prompt: str) -> str:
        tag_lines = re.findall(r"^([a-z_]+): (A\) .*)$", prompt, re.M)
        if tag_lines:
            return self.tag_answer(prompt, tag_lines)
        if self.mode == "first":
            return "A"
        if self.mode == "malformed":
            return "Both responses have merits; I cannot decide."
        if "[Response]" in prompt:  # a rating
            return "4" if "GOOD" in prompt.split("[Response]", 1)[1] else "2"
        # Each response runs to the next blank line (test responses have none inside).
        blocks = dict(re.findall(r"\[Response ([A-Z])\]\n(.*?)(?:\n\n|\Z)", prompt, re.S))
        if "C" in blocks:  # a ranking by content: GOOD first, the rest alphabetically
            letters = sorted(
                blocks, key=lambda letter: ("GOOD" not in blocks[letter], blocks[letter])
            )
            return " > ".join(letters)
        return "A" if "GOOD" in blocks.get("A", "") else "B"

    def tag_answer(self, prompt: str, tag_lines: list[tuple[str, str]]) -> str:
        if self.tag_mode == "malformed":
            return "This looks like a question about cooking, fairly simple."
        lines = []
        for tag, options in tag_lines:
            letters = dict(
                (value.strip(), letter)
                for letter, value in re.findall(r"([A-Z])\) ([^,]+)", options)
            )
            hinted = [value for value in letters if f"{tag}={value}" in prompt]
            lines.append(f"{tag}: {letters[hinted[0]] if hinted else 'A'}")
        return "\n".join(lines)

    def start(self) -> JudgeStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with stub._lock:
                    stub.active += 1
                    stub.max_active = max(stub.max_active, stub.active)
                    index = len(stub.requests)
                    stub.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    status = stub.script[index] if index < len(stub.script) else 200
                    stub.statuses.append(status)
                self._counted = True
                try:
                    if stub.delay:
                        time.sleep(stub.delay)
                    self._answer(status, body)
                finally:
                    self._release()

            def _release(self) -> None:
                # A request stops counting as active before its body is written: once the
                # client has the body it may send the next request before this thread
                # would otherwise reach its decrement, and the count would overstate.
                if getattr(self, "_counted", False):
                    self._counted = False
                    with stub._lock:
                        stub.active -= 1

            def _answer(self, status: int, body: bytes) -> None:
                if status != 200:
                    payload = json.dumps({"error": {"message": f"scripted {status}"}}).encode()
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", stub.retry_after)
                    if status in (301, 302, 307, 308) and stub.redirect_to:
                        self.send_header("Location", stub.redirect_to)
                elif stub.mode == "not_json":
                    payload = b"<html>oops</html>"
                    self.send_response(200)
                else:
                    request = json.loads(body)
                    prompt = request["messages"][-1]["content"]
                    text = stub.answer_text(prompt)
                    choice: dict = {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                    if stub.logprobs and request.get("logprobs") and text in ("A", "B"):
                        other = "B" if text == "A" else "A"
                        choice["logprobs"] = {
                            "content": [
                                {
                                    "token": text,
                                    "logprob": -0.1,
                                    "top_logprobs": [
                                        {"token": text, "logprob": -0.1},
                                        {"token": other, "logprob": -2.4},
                                    ],
                                }
                            ]
                        }
                    payload = json.dumps(
                        {"id": "stub", "object": "chat.completion", "choices": [choice]}
                    ).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self._release()
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            # The listen backlog is set when the server binds: a class attribute, or
            # bursts of 16 new connections overflow the default of 5 and get reset.
            request_queue_size = 128
            daemon_threads = True

            def handle_error(self, request, client_address):
                # A client that gave up (the timeout tests' judges do, on purpose) is not
                # an error of the stub: no traceback in the test output for it.
                if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    return
                super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
