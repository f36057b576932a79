"""`salesguard grafana push` against a small local double of Grafana's HTTP API (there is no
Grafana server on these machines): what it sends, with which token, and how it fails."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from monitoring.dashboards import DASHBOARDS
from streams.cli import cli

TOKEN = "glsa_test-token-0123456789"


class GrafanaDouble(BaseHTTPRequestHandler):
    """Answers like Grafana: no folder and no data source yet, accepts what is created."""

    requests: list[tuple[str, str, str | None, dict | None]] = []
    refuse = False

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append((self.command, self.path, self.headers.get("Authorization"), body))
        if self.refuse or self.headers.get("Authorization") != f"Bearer {TOKEN}":
            status, answer = 401, {"message": "Unauthorized"}
        elif self.command == "GET" and self.path in ("/api/folders/salesguard",
                                                     "/api/datasources/uid/salesguard-prometheus"):
            status, answer = 404, {"message": "not found"}
        else:
            status, answer = 200, {"status": "success", "uid": (body or {}).get("uid", "x")}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture()
def grafana():
    GrafanaDouble.requests = []
    GrafanaDouble.refuse = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), GrafanaDouble)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_push_makes_the_folder_and_data_source_then_overwrites_every_dashboard(grafana):
    result = CliRunner().invoke(cli, ["grafana", "push", "--url", grafana, "--token", TOKEN,
                                      "--prometheus-url", "http://prometheus:9090"])
    assert result.exit_code == 0, result.output
    assert f"pushed {len(DASHBOARDS)} dashboards" in result.output
    calls = [(method, path) for method, path, _, _ in GrafanaDouble.requests]
    assert calls == [("GET", "/api/datasources/uid/salesguard-prometheus"), ("POST", "/api/datasources"),
                     ("GET", "/api/folders/salesguard"), ("POST", "/api/folders")] + [
                        ("POST", "/api/dashboards/db")] * len(DASHBOARDS)
    assert {auth for _, _, auth, _ in GrafanaDouble.requests} == {f"Bearer {TOKEN}"}
    source = GrafanaDouble.requests[1][3]
    assert (source["uid"], source["type"], source["url"]) == ("salesguard-prometheus", "prometheus",
                                                              "http://prometheus:9090")
    pushed = [body for _, path, _, body in GrafanaDouble.requests if path == "/api/dashboards/db"]
    assert [body["dashboard"] for body in pushed] == [build() for build in DASHBOARDS.values()]
    assert all(body["folderUid"] == "salesguard" and body["overwrite"] for body in pushed)


def test_a_refused_token_fails_with_a_clear_message_that_does_not_repeat_it(grafana):
    GrafanaDouble.refuse = True
    result = CliRunner().invoke(cli, ["grafana", "push", "--url", grafana, "--token", TOKEN])
    assert result.exit_code == 2 and "refused: 401 Unauthorized" in result.output
    assert TOKEN not in result.output


def test_an_unreachable_grafana_fails_with_its_address():
    result = CliRunner().invoke(cli, ["grafana", "push", "--url", "http://127.0.0.1:9", "--token", TOKEN])
    assert result.exit_code == 2 and "http://127.0.0.1:9" in result.output and TOKEN not in result.output
