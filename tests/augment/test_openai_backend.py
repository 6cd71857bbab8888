"""The `openai` augmentation backend against a fake OpenAI-compatible server on localhost (started here; nothing
external): request format (frames as image_url data URLs, the expression), parsing, retries after 5xx, 429 and
timeouts, malformed replies, errors that stop at once, the rate limiter, and `rvos augment --backend openai`."""
from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from rvos.augment.cache import read_augmentation
from rvos.augment.openai_backend import AugmentError, OpenAIBackend, OpenAIConfig, RateLimiter, parse_reply
from rvos.cli import main
from rvos.data.readers import open_dataset

GOOD = {"positives": ["a brown camel walking slowly across the sand", "a one-humped camel moving to the right"],
        "negatives": [{"text": "a horse moving", "changed": "category"},
                      {"text": "a white camel moving", "changed": "attribute"}, "a camel lying down"]}


class FakeServer:
    """Answers POST /v1/chat/completions with the next scripted reply: ("ok", content) | ("status", code, body,
    headers) | ("hang",) (never answers until the test ends)."""

    def __init__(self):
        self.script, self.requests, self.release = [], [], threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                step = outer.script.pop(0) if outer.script else ("ok", json.dumps(GOOD))
                if step[0] == "hang":
                    outer.release.wait(30)
                    return
                if step[0] == "ok":
                    code, data, headers = 200, {"choices": [{"message": {"role": "assistant", "content": step[1]}}]}, {}
                else:
                    code, data, headers = step[1], step[2], step[3] if len(step) > 3 else {}
                raw = json.dumps(data).encode()
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def camel(davis_sample):
    rec = next(r for r in open_dataset(davis_sample) if r.video_id == "camel")
    return rec, rec.expressions[0]


def backend(url, sleeps=None, **kw):
    cfg = OpenAIConfig(base_url=url, model="qwen3-vl-test", api_key="sk-test", frames=3, image_size=96,
                       retries=kw.pop("retries", 2), backoff=0.5, **kw)
    return OpenAIBackend(cfg, sleep=(sleeps.append if sleeps is not None else (lambda s: None)))


def test_request_carries_frames_and_expression_and_reply_is_parsed(server, camel):
    rec, exp = camel
    g = backend(server.url).generate(rec, exp, 2, 3)
    assert g.positives == GOOD["positives"]
    assert [(n.text, n.changed) for n in g.negatives] == [("a horse moving", "category"),
                                                          ("a white camel moving", "attribute"), ("a camel lying down", "")]
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    body = req["body"]
    assert body["model"] == "qwen3-vl-test"
    parts = body["messages"][1]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 3
    img = Image.open(io.BytesIO(base64.b64decode(images[0]["image_url"]["url"].split(",", 1)[1])))
    assert img.format == "JPEG" and max(img.size) == 96  # 854x480 frames sent at the requested size
    text = next(p["text"] for p in parts if p["type"] == "text")
    assert '"a camel moving"' in text and "2 positive" in text and "3 hard negative" in text


def test_retries_server_errors_rate_limits_and_timeouts(server, camel):
    rec, exp = camel
    sleeps = []
    server.script = [("status", 500, {"error": "busy"}), ("status", 429, {"error": "slow down"}, {"Retry-After": "7"}),
                     ("ok", json.dumps(GOOD))]
    b = backend(server.url, sleeps)
    assert b.generate(rec, exp, 2, 3).positives == GOOD["positives"]
    assert b.requests == 3 and sleeps == [0.5, 7.0]  # backoff 0.5 s, then the server's Retry-After
    server.script = [("hang",), ("ok", json.dumps(GOOD))]
    b = backend(server.url, timeout=0.5)
    assert b.generate(rec, exp, 2, 3).negatives and b.requests == 2  # the first request timed out


def test_malformed_replies_are_retried_then_reported(server, camel):
    rec, exp = camel
    server.script = [("ok", "Sure! Here you go."), ("ok", "```json\n" + json.dumps(GOOD) + "\n```")]
    assert backend(server.url).generate(rec, exp, 1, 1).positives == GOOD["positives"][:1]  # fenced JSON is fine
    server.script = [("ok", "no json")] * 3
    with pytest.raises(AugmentError, match="no usable JSON.*'camel'.*no json"):
        backend(server.url).generate(rec, exp, 1, 1)


def test_errors_a_retry_cannot_fix_stop_at_once(server, camel):
    rec, exp = camel
    server.script = [("status", 404, {"error": "model 'qwen3-vl-test' not found"})]
    b = backend(server.url)
    with pytest.raises(AugmentError, match="HTTP 404.*not found"):
        b.generate(rec, exp, 1, 1)
    assert b.requests == 1
    server.script = [("status", 503, {})] * 3
    with pytest.raises(AugmentError, match="after 3 attempts: HTTP 503"):
        backend(server.url).generate(rec, exp, 1, 1)
    server.script = [("status", 200, {"not": "a chat answer"})]
    with pytest.raises(AugmentError, match="not an OpenAI-compatible"):
        backend(server.url).generate(rec, exp, 1, 1)
    with pytest.raises(AugmentError, match="connection failed"):
        backend("http://127.0.0.1:9/v1", retries=0).generate(rec, exp, 1, 1)  # nothing listens on port 9
    with pytest.raises(AugmentError, match="http"):
        backend("localhost:8000")


def test_rate_limiter_spaces_calls():
    now, sleeps = [0.0], []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    lim = RateLimiter(30, clock=lambda: now[0], sleep=sleep)  # one call per 2 s
    lim.wait()
    now[0] += 0.5
    lim.wait()
    now[0] += 5.0
    lim.wait()
    assert sleeps == [1.5]
    RateLimiter(0, clock=lambda: 0.0, sleep=sleep).wait()  # no limit
    assert sleeps == [1.5]


def test_parse_reply_checks_the_shape():
    with pytest.raises(ValueError, match="lists"):
        parse_reply('{"positives": "one"}', 2, 2)
    with pytest.raises(ValueError, match="no usable"):
        parse_reply('{"positives": [], "negatives": [""]}', 2, 2)
    g = parse_reply('{"positives": ["a  b"], "negatives": [{"text": "c", "changed": "Colour"}]}', 2, 2)
    assert g.positives == ["a b"] and g.negatives[0].changed == ""  # not one of the three kinds


def test_cli_openai_writes_the_cache(server, tmp_path, davis_sample, capsys):
    out = tmp_path / "davis_vlm.jsonl"
    rc = main(["augment", str(davis_sample), "--backend", "openai", "--base-url", server.url, "--model", "qwen3-vl-test",
               "--out", str(out), "--scorer", "none", "--positives", "2", "--negatives", "3", "--frames", "2",
               "--image-size", "64", "--workers", "2"])
    assert rc == 0 and "6 expressions augmented" in capsys.readouterr().out
    header, entries = read_augmentation(out)
    assert header["backend"] == "openai" and header["backend_params"]["model"] == "qwen3-vl-test"
    assert len(entries) == 6 and len(server.requests) == 6
    assert entries[("goat", "0")].positives[0].text == GOOD["positives"][0]
    assert [n.changed for n in entries[("goat", "0")].negatives] == ["category", "attribute", ""]
    rc = main(["augment", str(davis_sample), "--backend", "openai", "--base-url", server.url, "--model", "other",
               "--out", str(out), "--scorer", "none", "--positives", "2", "--negatives", "3", "--frames", "2"])
    assert rc == 2 and "other settings" in capsys.readouterr().err
