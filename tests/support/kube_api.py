"""A small stand-in for the Kubernetes API server (Kubernetes cannot run here): the ``apps/v1`` endpoints
the Kubernetes tools use, over real HTTP, with ``dryRun=All`` honoured (validated, answered, not stored).

    with FakeKubeApi({"default/checkout": 3}) as kube:
        ...  # kubernetes client with configuration.host = kube.url
        kube.deployments["default/checkout"]["spec"]["replicas"]
        kube.requests  # [("PATCH", "/apis/apps/v1/namespaces/default/deployments/checkout/scale", True)]
"""
from __future__ import annotations

import copy
import json
import re
from http.server import BaseHTTPRequestHandler
from typing import Self
from urllib.parse import parse_qs, urlparse

from support.servers import ThreadedHttpServer

PATH = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)(/scale)?$")


def _deployment(namespace: str, name: str, replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "generation": 1, "uid": f"uid-{name}"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}, "annotations": {}},
                                  "spec": {"containers": [{"name": name, "image": f"shop/{name}:1"}]}}},
            "status": {"replicas": replicas}}


def _merge(into: dict, patch: dict) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif value is None:
            into.pop(key, None)
        else:
            into[key] = value


class FakeKubeApi(ThreadedHttpServer):
    def __init__(self, replicas: dict[str, int]):
        self.deployments = {key: _deployment(*key.split("/"), n) for key, n in replicas.items()}
        self.requests: list[tuple[str, str, bool]] = []

    def _scale(self, d: dict) -> dict:
        return {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": dict(d["metadata"]),
                "spec": {"replicas": d["spec"]["replicas"]}, "status": {"replicas": d["status"]["replicas"]}}

    def handle(self, method: str, raw_path: str, body: bytes) -> tuple[int, dict]:
        url = urlparse(raw_path)
        dry = parse_qs(url.query).get("dryRun") == ["All"]
        self.requests.append((method, url.path, dry))
        match = PATH.match(url.path)
        if not match:
            return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
        ns, name, scale = match.groups()
        current = self.deployments.get(f"{ns}/{name}")
        if current is None:
            return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
                         "message": f'deployments.apps "{name}" not found'}
        if method == "GET":
            return 200, self._scale(current) if scale else current
        patch = json.loads(body or b"{}")
        changed = copy.deepcopy(current)
        if scale:
            replicas = patch.get("spec", {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                return 422, {"kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422}
            changed["spec"]["replicas"] = replicas
        else:
            _merge(changed, patch)
        changed["metadata"]["generation"] += 1
        if not dry:
            self.deployments[f"{ns}/{name}"] = changed
        return 200, self._scale(changed) if scale else changed

    def __enter__(self) -> Self:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                code, doc = api.handle(self.command, self.path, self.rfile.read(length) if length else b"")
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = _answer

            def log_message(self, *args):
                pass

        self.url = self._serve(Handler)
        return self
