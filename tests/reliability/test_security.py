"""Security at the HTTP surface: the API key on every route but /health, /metrics and /version,
whatever the spelling of the path or the Host header (requests written byte for byte, so no
client library normalizes them first); the key never in the logs; TLS."""
import socket

import httpx
import pytest

from tests.reliability.conftest import API_KEY, AUTH, NAME

CHAT = {"model": NAME, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0}


def raw_http(port: int, request: bytes) -> tuple[int, bytes]:
    """Send `request` as is; (status, body) of the answer (status 0: the server closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/"):
        return 0, data
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def get(target: str, host: str | None = "127.0.0.1", headers: str = "", method: str = "GET",
        version: str = "HTTP/1.1") -> bytes:
    host_line = f"Host: {host}\r\n" if host is not None else ""
    return f"{method} {target} {version}\r\n{host_line}{headers}Connection: close\r\n\r\n".encode()


ODD_PATHS = ["/v1/models", "//v1/models", "/v1//models", "/v1/../v1/models", "/v1/./models", "/./v1/models",
             "/%76%31/models", "/v1%2Fmodels", "/v1/models%2F", "/v1/models/", "/health/../v1/models",
             "/health/%2e%2e/v1/models", "/metrics/../v1/models", "/health%2F..%2Fv1/models", "/V1/models",
             "/v1/models?/health", "/v1/models#/health", "/v1/models;/health", "/openapi.json", "/docs", "/tokenize",
             "/v1/models%00", "/%2e%2e/v1/models", "/v1/models/../../health/../v1/models"]


@pytest.mark.parametrize("path", ODD_PATHS)
def test_no_path_spelling_gets_past_the_key(guarded_server, path):
    status, body = raw_http(guarded_server.port, get(path))
    # 401 from the key check, or 400 where uvicorn refuses the request line itself.
    assert status in (400, 401), (status, body[:200])
    assert b'"data"' not in body and b'"object"' not in body


@pytest.mark.parametrize("request_bytes", [
    get("http://127.0.0.1/v1/models"),                       # absolute-form target
    get("http://127.0.0.1/health/../v1/models"),
    get("/v1/models", host="evil.example"),
    get("/v1/models", host="127.0.0.1:1/health"),
    get("/v1/models", host=""),
    get("/v1/models", host=None, version="HTTP/1.0"),      # no Host at all
    get("/v1/models", headers="X-Forwarded-Host: localhost\r\nX-Original-URL: /health\r\n"),
    get("/v1/models", headers="X-Forwarded-Prefix: /health\r\nX-Rewrite-URL: /health\r\n"),
    get("/v1/models", method="HEAD"),
    get("/v1/models", method="OPTIONS"),
    get("/v1/models", headers="Authorization: bearer wrong\r\n"),
    get("/v1/models", headers=f"Authorization: Basic {API_KEY}\r\n"),
    get("/v1/models", headers=f"Authorization: Bearer {API_KEY[:-1]}\r\n"),
    get("/v1/models", headers=f"Authorization: Bearer {API_KEY}x\r\n"),
    get("/v1/models", headers=f"Authorization: Bearer wrong\r\nAuthorization: Bearer {API_KEY}\r\n"),
    get("/v1/models", headers=f"X-API-Key: {API_KEY}\r\nCookie: api_key={API_KEY}\r\n"),
    get(f"/v1/models?api_key={API_KEY}"),
])
def test_no_header_trick_gets_past_the_key(guarded_server, request_bytes):
    status, body = raw_http(guarded_server.port, request_bytes)
    assert status in (400, 401), (status, body[:200])


def test_every_route_but_the_probes_needs_the_key(guarded_server):
    url = guarded_server.url
    for method, path in [("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("POST", "/tokenize"),
                         ("POST", "/detokenize"), ("GET", "/v1/models"), ("GET", "/openapi.json")]:
        assert httpx.request(method, url + path, json=CHAT).status_code == 401, path
    for path in ("/health", "/metrics", "/version"):
        assert httpx.get(url + path).status_code == 200, path
    status, _ = raw_http(guarded_server.port, get("/v1/models", headers=f"Authorization: Bearer {API_KEY}\r\n"))
    assert status == 200
    assert httpx.post(url + "/v1/chat/completions", json=CHAT, headers=AUTH, timeout=30).status_code == 200


def test_the_key_never_reaches_the_logs(guarded_server):
    url = guarded_server.url
    httpx.get(url + "/v1/models", headers=AUTH)
    httpx.get(url + f"/v1/models?key={API_KEY}", headers=AUTH)
    httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {API_KEY}-wrong"})
    httpx.post(url + "/v1/chat/completions", headers=AUTH, timeout=30,
               json={**CHAT, "messages": [{"role": "user", "content": f"my key is {API_KEY}"}]})
    httpx.post(url + "/v1/completions", headers=AUTH, timeout=30,
               json={"model": NAME, "prompt": f"key {API_KEY}", "max_tokens": 2, "bad_field_type": API_KEY})
    log = guarded_server.log()
    assert "Received request" in log  # request logging is on: the prompts were logged, redacted
    assert API_KEY not in log and API_KEY[:-4] not in log
    assert "<redacted>" in log


def test_tls(tls_server):
    url = tls_server.url
    assert url.startswith("https://")
    assert httpx.get(url + "/health", verify=tls_server.verify).status_code == 200
    r = httpx.post(url + "/v1/chat/completions", json=CHAT, headers=AUTH, verify=tls_server.verify, timeout=30)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] is not None
    assert httpx.get(url + "/v1/models", verify=tls_server.verify).status_code == 401
    with pytest.raises(httpx.HTTPError):  # the certificate is not trusted by default
        httpx.get(url + "/health")
    plain = url.replace("https://", "http://")
    try:
        status = httpx.get(plain + "/health", timeout=5).status_code
    except httpx.HTTPError:
        status = None
    assert status != 200  # no plain HTTP on the TLS port
