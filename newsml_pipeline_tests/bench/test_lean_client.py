"""bench/lean_client.py: the client behind serve.py's HTTP latency figure posts JSON, keeps its
connection, survives a server that closed it, and never passes an error answer off as a result."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from newsml_pipeline_tests.bench.bench_import import bench_module


@pytest.fixture(scope="module")
def lean_client():  # noqa: ANN201
    with bench_module("lean_client") as module:
        yield module


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set[int] = set()

    def do_POST(self) -> None:  # noqa: N802
        _Echo.connections.add(self.client_address[1])
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = 422 if body.get("bad") else 200
        out = json.dumps({"echo": body, "type": self.headers["Content-Type"]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        if body.get("close"):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def echo_url():  # noqa: ANN201
    _Echo.connections = set()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_posts_json_on_one_kept_connection(lean_client, echo_url) -> None:  # noqa: ANN001
    with lean_client.LeanClient(echo_url) as c:
        for i in range(3):
            assert c.post_json("/classify", {"text": f"a{i}"}) == {
                "echo": {"text": f"a{i}"},
                "type": "application/json",
            }
    assert len(_Echo.connections) == 1  # keep-alive: one client port for three requests


def test_a_closed_connection_is_reopened_and_errors_raise(lean_client, echo_url) -> None:  # noqa: ANN001
    with lean_client.LeanClient(echo_url) as c:
        assert c.post_json("/x", {"close": True})["echo"] == {"close": True}
        assert c.post_json("/x", {"text": "after"})["echo"] == {"text": "after"}
        with pytest.raises(RuntimeError, match="answered 422"):
            c.post_json("/x", {"bad": True})
    with pytest.raises(ValueError, match="plain http"):
        lean_client.LeanClient("https://example.org")
