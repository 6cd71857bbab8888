"""The `openai` augmentation backend: a vision-language model behind any OpenAI-compatible chat endpoint.

For example a vLLM server with Qwen3-VL (`vllm serve Qwen/Qwen3-VL-8B-Instruct`, base URL
http://localhost:8000/v1). Each expression is one POST to `{base_url}/chat/completions`: a few frames sampled
evenly over the video, as JPEG data URLs (`image_url` parts), and the original expression, asking for P detailed
positives (appearance, action, interaction) and N hard negatives (category, attribute or action changed), in
JSON. HTTP goes through the standard library (urllib.request): no client package to install.

Robustness:
- a timeout per request (`timeout`); connection errors, timeouts, HTTP 429 and 5xx are retried `retries` times
  with exponential backoff (`backoff` * 2^attempt seconds; a 429's Retry-After header wins when it is longer);
- a reply that is not the JSON asked for is retried too (sampling may fix it);
- `rpm` > 0 spaces requests to at most that many a minute (shared by worker threads);
- anything else (401, 404, a model the server does not know) stops at once with an AugmentError naming the
  URL, the status and the start of the server's answer; so does a request whose retries are spent.
"""
from __future__ import annotations

import base64
import io
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from rvos.augment.rules import Generated, Negative
from rvos.augment.scorers import sample_indices
from rvos.data.types import Expression, VideoRecord
from rvos.errors import RVOSError

SYSTEM = ("You describe objects in videos for referring video object segmentation. You answer with JSON only.")
PROMPT = """The {k} images are frames of one video, in order. This referring expression describes one object in it:
"{text}"
1. Write {p} positive descriptions of that same object, more detailed than the expression: its appearance
(category, colour, size, parts), its action, and how it interacts with other objects. Each must be true in the video.
2. Write {n} hard negative descriptions: each changes exactly one of the object's category, one attribute (colour,
size, position) or its action, so that it stays plausible for this video but is false of this object.
Answer with this JSON and nothing else:
{{"positives": ["..."], "negatives": [{{"text": "...", "changed": "category" or "attribute" or "action"}}]}}"""
KINDS = ("category", "attribute", "action")


class AugmentError(RVOSError):
    """The augmentation endpoint failed in a way a retry does not fix (or the retries are spent)."""


@dataclass
class OpenAIConfig:
    base_url: str  # e.g. http://localhost:8000/v1
    model: str  # the served model's name
    api_key: Optional[str] = None  # sent as "Authorization: Bearer ..." when set
    timeout: float = 120.0  # seconds per request
    retries: int = 3
    backoff: float = 2.0  # seconds before the first retry, doubled each time
    rpm: float = 0.0  # requests per minute at most; 0 = no limit
    frames: int = 4  # frames sent per expression
    image_size: int = 448  # longer side of each frame sent, pixels
    temperature: float = 0.7
    max_tokens: int = 1024


class RateLimiter:
    """At most `rpm` calls a minute: each `wait()` returns no earlier than 60/rpm seconds after the previous."""

    def __init__(self, rpm: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 60.0 / rpm if rpm > 0 else 0.0
        self.clock, self.sleep = clock, sleep
        self._next = None
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self.clock()
            start = now if self._next is None else max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self.sleep(start - now)


def frame_data_url(frame: np.ndarray, size: int) -> str:
    """uint8 [H, W, 3] RGB -> "data:image/jpeg;base64,..." with the longer side at most `size` pixels."""
    from PIL import Image

    img = Image.fromarray(frame)
    scale = size / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def parse_reply(content: str, num_positives: int, num_negatives: int) -> Generated:
    """The model's answer -> Generated; ValueError when it is not the JSON asked for."""
    text = re.sub(r"^```(?:json)?|```$", "", content.strip(), flags=re.MULTILINE).strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object in the reply")
    d = json.loads(text[start: end + 1])
    pos, neg = d.get("positives"), d.get("negatives")
    if not isinstance(pos, list) or not isinstance(neg, list):
        raise ValueError("the reply needs lists 'positives' and 'negatives'")
    positives = [" ".join(str(p).split()) for p in pos if isinstance(p, str) and p.strip()]
    negatives = []
    for n in neg:
        if isinstance(n, str) and n.strip():
            negatives.append(Negative(" ".join(n.split()), "", "", "", ""))
        elif isinstance(n, dict) and isinstance(n.get("text"), str) and n["text"].strip():
            kind = str(n.get("changed", "")).lower()
            negatives.append(Negative(" ".join(n["text"].split()), kind if kind in KINDS else "", "", "", ""))
    if not positives and not negatives:
        raise ValueError("the reply holds no usable sentence")
    return Generated(positives[:num_positives], negatives[:num_negatives])


class OpenAIBackend:
    name = "openai"

    def __init__(self, cfg: OpenAIConfig, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.cfg, self.sleep = cfg, sleep
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        if not self.url.startswith(("http://", "https://")):
            raise AugmentError(f"--base-url must be an http(s) URL such as http://localhost:8000/v1, got "
                               f"{cfg.base_url!r}")
        self.headers = {"Content-Type": "application/json"}
        if cfg.api_key:
            self.headers["Authorization"] = f"Bearer {cfg.api_key}"
        self.limiter = RateLimiter(cfg.rpm, clock, sleep)
        self.requests = 0  # HTTP requests sent, retries included

    def payload(self, record: VideoRecord, exp: Expression, p: int, n: int) -> dict:
        idx = sample_indices(len(record.video), self.cfg.frames)
        images = [{"type": "image_url", "image_url": {"url": frame_data_url(record.video.frame(i), self.cfg.image_size)}}
                  for i in idx]
        prompt = PROMPT.format(k=len(idx), text=exp.text, p=p, n=n)
        return {"model": self.cfg.model, "temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens,
                "messages": [{"role": "system", "content": SYSTEM},
                             {"role": "user", "content": [*images, {"type": "text", "text": prompt}]}]}

    def _send(self, body: bytes) -> tuple[int, dict, str]:
        """(status, headers, body text) of one POST; raises TimeoutError / OSError on network failure."""
        req = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in (e.headers or {}).items()}, e.read().decode("utf-8", "replace")

    def _post(self, payload: dict, what: str) -> str:
        """The reply's message content; retries what a retry can fix."""
        body = json.dumps(payload).encode()
        last, wait = "", 0.0
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                self.sleep(max(wait, self.cfg.backoff * 2 ** (attempt - 1)))
            self.limiter.wait()
            self.requests += 1
            wait = 0.0
            try:
                status, headers, text = self._send(body)
            except (TimeoutError, socket.timeout):
                last = f"no answer within {self.cfg.timeout} s"
                continue
            except (urllib.error.URLError, ConnectionError, OSError) as e:
                if isinstance(getattr(e, "reason", None), (TimeoutError, socket.timeout)):
                    last = f"no answer within {self.cfg.timeout} s"
                else:
                    last = f"connection failed ({getattr(e, 'reason', e)})"
                continue
            if status == 429 or status >= 500:
                last = f"HTTP {status}: {text[:200]}"
                retry_after = headers.get("retry-after", "")
                if status == 429 and retry_after.replace(".", "", 1).isdigit():
                    wait = float(retry_after)
                continue
            if status != 200:
                raise AugmentError(f"{self.url} answered HTTP {status} for {what}: {text[:300]!r} "
                                   "(check --base-url, --model and the API key)")
            try:
                return str(json.loads(text)["choices"][0]["message"]["content"])
            except (ValueError, KeyError, IndexError, TypeError):
                raise AugmentError(f"{self.url} is not an OpenAI-compatible chat endpoint: its answer for {what} "
                                   f"has no choices[0].message.content ({text[:200]!r})") from None
        raise AugmentError(f"{self.url} failed for {what} after {self.cfg.retries + 1} attempts: {last}")

    def generate(self, record: VideoRecord, exp: Expression, num_positives: int, num_negatives: int) -> Generated:
        what = f"video {record.video_id!r} expression {exp.exp_id!r}"
        payload = self.payload(record, exp, num_positives, num_negatives)
        error = ""
        for attempt in range(self.cfg.retries + 1):
            content = self._post(payload, what)
            try:
                return parse_reply(content, num_positives, num_negatives)
            except ValueError as e:
                error = f"{e}; reply began {content[:200]!r}"
        raise AugmentError(f"{self.url} gave no usable JSON for {what} in {self.cfg.retries + 1} replies: {error}")
