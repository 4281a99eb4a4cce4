"""Look at the Prefect and MLflow UIs as a user would, after a finished `make run`: `make ui-check`.

Starts `cerebro ui --no-wait` over the home folder (the Prefect server, the MLflow server, prefect.yaml's
deployments and a worker), opens the key pages in headless Chromium, saves a PNG of each to <home>/ui-check/,
reads each page's rendered text, checks through the APIs that the data behind the pages is there, prints one
row per page and stops the UIs. Exit 0: every check passed; 1: a check failed; 2: it could not run (no
Chromium, no finished run, a port in use).

    python scripts/ui_check.py                     # over .cerebro of this checkout
    python scripts/ui_check.py --home /tmp/h       # another home folder
    python scripts/ui_check.py --install           # apt-get install chromium first when missing (root)

Not part of the pytest suite: it needs Chromium and a finished pipeline run.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
INSTALL = "apt-get install -y chromium"
POOL = "cerebro-local"
ARTIFACTS = ["pipeline-summary", "detection-report", "capacity-plan", "drift-report", "detection-scores-plot"]
OPTIONAL_ARTIFACTS = ["investigation-report"]

# What people must never read on a page: a missing value spelled by Python or pandas, a float printed with
# all its digits, a 17-digit number (a float's repr or a raw id).
BAD_TEXT = {
    "nan": re.compile(r"\b(?:nan|NaN)\b"),
    "NaT": re.compile(r"\bNaT\b"),
    "None": re.compile(r"\bNone\b"),
    "9+ decimals": re.compile(r"\d\.\d{9,}"),
    "17+ digits": re.compile(r"(?<![\w.#-])\d{17,}(?![\w-])"),
}
# Prefect's own detail panels print "None" for an empty field (a flow run's tags, a work pool's description):
# the UI's words, not the project's, so they are left out before the text is checked.
PREFECT_EMPTY_FIELDS = re.compile(
    r"\b(?:Tags|State Message|Description|Concurrency Limit|Name|Environment Variables|Labels|Command|"
    r"Working Directory|Parameters|Job Variables|Work Queue|Schedule|Triggers|Infrastructure|Work Pool|"
    r"Deployment|Flow Run|Task Run|Parent Flow Run|Version|Retries|Retry Delay|Cache Key|"
    r"Cache Expiration|Run Count|Estimated Run Time|Created By|Updated By) None\b")
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|(?<![(<\w])((?:https?|file)://[^\s)<>\]\"']+)")


@dataclass
class Row:
    page: str
    url: str = ""
    png: str = ""
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> bool:
        (self.passed if ok else self.failed).append(what)
        return ok


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def ensure_chromium(install: bool) -> str:
    if (found := chromium_binary()) or not install:
        if not found:
            print(f"Chromium is missing. Install it (as root) with:\n    {INSTALL}\nor run this script with --install.")
            sys.exit(2)
        return found
    if os.geteuid() != 0:
        print(f"--install needs root: run `sudo {INSTALL}`, then this script again.")
        sys.exit(2)
    subprocess.run(["apt-get", "update", "-q"], check=False)
    if subprocess.run(INSTALL.split(), check=False).returncode != 0 or not (found := chromium_binary()):
        print(f"`{INSTALL}` did not install Chromium.")
        sys.exit(2)
    return found


class Browser:
    """Headless Chromium, one process per page: a PNG of the page and its rendered DOM."""

    def __init__(self, binary: str, budget_ms: int = 15000):
        self.base = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     "--window-size=1400,1600", f"--virtual-time-budget={budget_ms}"]

    def screenshot(self, url: str, png: Path) -> bool:
        png.unlink(missing_ok=True)
        subprocess.run([*self.base, f"--screenshot={png}", url], capture_output=True, timeout=120, check=False)
        return png.exists() and png.stat().st_size > 0

    def text(self, url: str) -> str:
        dom = subprocess.run([*self.base, "--dump-dom", url], capture_output=True, text=True, timeout=120,
                             check=False).stdout
        dom = re.sub(r"<(script|style|noscript)\b[^>]*>.*?</\1>", " ", dom, flags=re.DOTALL | re.IGNORECASE)
        return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())


def http_json(url: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"},
                                 method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def link_answers(url: str) -> tuple[bool, str]:
    """Whether a link opens in a browser: http(s), 2xx/3xx. Sent as a browser sends it (Accept: text/html):
    Prefect's server answers a deep link of its UI with the app only when asked for HTML, 404 otherwise."""
    if not url.startswith(("http://", "https://")):
        return False, "not an http link (a browser blocks file:// from an http page)"
    for method in ("HEAD", "GET"):
        req = urllib.request.Request(url, method=method, headers={"Accept": "text/html,*/*;q=0.8"})
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                if resp.status < 400:
                    return True, str(resp.status)
        except urllib.error.HTTPError as exc:
            if method == "GET":
                return False, f"HTTP {exc.code}"
        except OSError as exc:
            return False, str(exc)
    return False, "no answer"


def link_target(url: str, prefect_ui: str, mlflow_ui: str) -> tuple[bool, str] | None:
    """Both UIs answer 200 for any route of their app: for a page of one artifact, run or model, ask the API
    that the thing exists."""
    parts = urllib.parse.urlsplit(url)
    probe = None
    if url.startswith(prefect_ui):
        if m := re.match(r"/artifacts/key/([^/?#]+)", parts.path):
            probe = f"{prefect_ui}/api/artifacts/{m.group(1)}/latest"
        elif m := re.match(r"/runs/flow-run/([0-9a-f-]{36})", parts.path):
            probe = f"{prefect_ui}/api/flow_runs/{m.group(1)}"
        elif m := re.match(r"/artifacts/artifact/([0-9a-f-]{36})", parts.path):
            probe = f"{prefect_ui}/api/artifacts/{m.group(1)}"
    elif url.startswith(mlflow_ui):
        if m := re.search(r"/runs/([0-9a-f]{32})", parts.fragment):
            probe = f"{mlflow_ui}/api/2.0/mlflow/runs/get?run_id={m.group(1)}"
        elif m := re.match(r"/?models/([^/?]+)", parts.fragment):
            probe = f"{mlflow_ui}/api/2.0/mlflow/registered-models/get?name={m.group(1)}"
    if probe is None:
        return None
    try:
        http_json(probe)
        return True, "exists"
    except (OSError, ValueError) as exc:
        return False, f"{probe}: {exc}"


def text_problems(text: str, prefect: bool) -> list[str]:
    if prefect:
        text = PREFECT_EMPTY_FIELDS.sub(" ", text)
    found = []
    for name, pattern in BAD_TEXT.items():
        hits = pattern.findall(text)
        if hits:
            where = pattern.search(text).start()
            found.append(f"{name} x{len(hits)} (…{text[max(0, where - 60):where + 40]}…)")
    return found


def look(browser: Browser, row: Row, shots: Path, slug: str, expect: list[str], prefect: bool) -> str:
    """Screenshot and text of one page; retries once with a longer budget when the SPA had not rendered."""
    png = shots / f"{slug}.png"
    row.png = str(png)
    text = browser.text(row.url)
    if not all(e in text for e in expect):
        time.sleep(3)
        text = Browser(browser.base[0], 40000).text(row.url)
    row.check(browser.screenshot(row.url, png), "screenshot")
    missing = [e for e in expect if e not in text]
    row.check(not missing, "rendered" + (f": missing {missing}" if missing else ""))
    problems = text_problems(text, prefect)
    row.check(not problems, "text" + (": " + "; ".join(problems) if problems else ""))
    return text


def start_ui(home: Path, prefect_port: int, mlflow_port: int) -> None:
    env = {**os.environ, "CEREBRO_HOME": str(home), "PYTHONPATH": str(ROOT),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GX_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-m", "flows.cli", "ui", "--no-wait", "--prefect-port", str(prefect_port),
                           "--mlflow-port", str(mlflow_port)], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        print(f"`cerebro ui` failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-1500:]}")
        stop_ui(home)
        sys.exit(2)


def stop_ui(home: Path) -> None:
    env = {**os.environ, "CEREBRO_HOME": str(home), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "flows.cli", "ui", "--stop"], cwd=ROOT, env=env, capture_output=True,
                   check=False)


def port_busy(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_worker(api: str, timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        workers = http_json(f"{api}/work_pools/{POOL}/workers/filter", {})
        if any(w["status"] == "ONLINE" for w in workers) or time.monotonic() > deadline:
            return workers
        time.sleep(3)


def check_prefect(browser: Browser, ui: str, mlflow_ui: str, shots: Path) -> list[Row]:
    api = f"{ui}/api"
    rows = []
    row = Row("prefect: dashboard", f"{ui}/dashboard")
    look(browser, row, shots, "prefect-dashboard", ["Flow Runs"], True)
    rows.append(row)

    # Every deployment of prefect.yaml, by entrypoint and name, registered on the work pool.
    row = Row("prefect: deployments", f"{ui}/deployments")
    wanted = {(d["entrypoint"], d["name"]) for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    deployed = http_json(f"{api}/deployments/filter", {})
    have = {(d["entrypoint"], d["name"]) for d in deployed if d.get("work_pool_name") == POOL}
    missing = sorted(f"{e} {n}" for e, n in wanted - have)
    row.check(not missing, f"api: {len(wanted)} deployments of prefect.yaml on {POOL}"
              + (f": missing {missing}" if missing else ""))
    not_ready = [d["name"] for d in deployed if d.get("status") != "READY"]
    row.check(not not_ready, "api: deployments READY" + (f": not {not_ready}" if not_ready else ""))
    look(browser, row, shots, "prefect-deployments", ["on-demand", "weekly", "hourly"], True)
    rows.append(row)

    row = Row("prefect: work pool + worker", f"{ui}/work-pools/work-pool/{POOL}?tab=Workers")
    workers = wait_worker(api)
    online = [w["name"] for w in workers if w["status"] == "ONLINE"]
    row.check(bool(online), f"api: a worker online on {POOL}" + ("" if online else f" (workers: {workers})"))
    pool = http_json(f"{api}/work_pools/{POOL}")
    row.check(pool.get("status") == "READY", f"api: work pool status {pool.get('status')}")
    look(browser, row, shots, "prefect-work-pool", ["ProcessWorker", "online"], True)
    rows.append(row)

    row = Row("prefect: pipeline flow run")
    flows = http_json(f"{api}/flows/filter", {"flows": {"name": {"any_": ["pipeline"]}}})
    runs = http_json(f"{api}/flow_runs/filter", {"flows": {"name": {"any_": ["pipeline"]}},
                                                  "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
                                                  "sort": "START_TIME_DESC", "limit": 1}) if flows else []
    if row.check(bool(runs), "api: a completed pipeline run"):
        row.url = f"{ui}/runs/flow-run/{runs[0]['id']}"
        look(browser, row, shots, "prefect-pipeline-run", [runs[0]["name"], "Completed"], True)
    rows.append(row)

    latest = {a["key"]: a for a in http_json(f"{api}/artifacts/latest/filter", {})}
    for key in ARTIFACTS + [k for k in OPTIONAL_ARTIFACTS if k in latest]:
        row = Row(f"prefect: artifact {key}")
        rows.append(row)
        if not row.check(key in latest, "api: artifact exists"):
            continue
        art = http_json(f"{api}/artifacts/{latest[key]['latest_id']}")
        row.url = f"{ui}/artifacts/artifact/{art['id']}"
        look(browser, row, shots, f"prefect-artifact-{key}", [key], True)
        if art["type"] == "markdown":
            check_links(row, art["data"] or "", ui, mlflow_ui)
    return rows


def check_links(row: Row, markdown: str, prefect_ui: str, mlflow_ui: str) -> None:
    links = {a or b for a, b in LINK.findall(markdown)}
    links = {u for u in links if not u.startswith(("data:", "#", "mailto:"))}
    dead = []
    for url in sorted(links):
        full = urllib.parse.urljoin(prefect_ui + "/", url) if url.startswith("/") else url
        ok, why = link_answers(full)
        if ok and (target := link_target(full, prefect_ui, mlflow_ui)):
            ok, why = target
        if not ok:
            dead.append(f"{url} ({why})")
    row.check(not dead, f"links: {len(links) - len(dead)}/{len(links)} answer" + (f"; dead: {dead}" if dead else ""))


def check_mlflow(browser: Browser, ui: str, shots: Path) -> list[Row]:
    api = f"{ui}/api/2.0/mlflow"
    rows = []
    row = Row("mlflow: experiment runs")
    try:
        exp = http_json(f"{api}/experiments/get-by-name?experiment_name=cerebro")["experiment"]
    except (OSError, KeyError) as exc:
        row.check(False, f"api: experiment cerebro ({exc})")
        return [row]
    runs = http_json(f"{api}/runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 1000})
    names = {r["info"].get("run_name") for r in runs.get("runs", [])}
    stage_runs = ["detector-zoo", "forecasting", "failure-predictor"]
    row.check(all(n in names for n in stage_runs), f"api: stage runs {stage_runs}")
    row.url = f"{ui}/#/experiments/{exp['experiment_id']}/runs"
    look(browser, row, shots, "mlflow-runs", ["detector-zoo", "forecasting"], False)
    rows.append(row)

    row = Row("mlflow: registered models", f"{ui}/#/models")
    models = http_json(f"{api}/registered-models/search?max_results=1000")["registered_models"]
    versions = http_json(f"{api}/model-versions/search?max_results=10000")["model_versions"]
    tags = {(v["name"], v["version"]): {t["key"]: t["value"] for t in v.get("tags", [])} for v in versions}
    row.check(bool(models), f"api: {len(models)} registered models")
    bare = [m["name"] for m in models if not (m.get("description") or "").strip()]
    row.check(not bare, "api: every model has a description" + (f": not {bare}" if bare else ""))
    bare = [f"{v['name']} v{v['version']}" for v in versions if not (v.get("description") or "").strip()]
    row.check(not bare, f"api: all {len(versions)} versions have a description" + (f": not {bare}" if bare else ""))
    champions = [(m["name"], a["version"]) for m in models for a in m.get("aliases", []) if a["alias"] == "champion"]
    row.check(bool(champions), f"api: {len(champions)} models hold @champion")
    # @champion only where the promotion gate said so: the version's status tag and its decision.
    wrong = [f"{n} v{v} (status {tags.get((n, v), {}).get('cerebro.status')}, decision "
             f"{tags.get((n, v), {}).get('cerebro.decision')})" for n, v in champions
             if tags.get((n, v), {}).get("cerebro.status") != "champion"
             or tags.get((n, v), {}).get("cerebro.decision") in (None, "below-target", "rejected", "kept")]
    row.check(not wrong, "api: @champion only on versions that passed the gate" + (f": {wrong}" if wrong else ""))
    untagged = [f"{n} v{v}" for (n, v), t in tags.items() if not t.get("cerebro.status")]
    row.check(not untagged, "api: every version tagged cerebro.status" + (f": not {untagged}" if untagged else ""))
    look(browser, row, shots, "mlflow-models", [m["name"] for m in models[:3]], False)
    rows.append(row)

    name = next((n for n, _ in champions if "ensemble" in n), champions[0][0] if champions else None)
    if name:
        row = Row(f"mlflow: model {name}", f"{ui}/#/models/{name}")
        look(browser, row, shots, "mlflow-model", [name, "champion", "cerebro.status"], False)
        rows.append(row)
    return rows


def print_table(rows: list[Row]) -> None:
    width = max(len(r.page) for r in rows)
    print(f"\n{'page':<{width}}  {'checks':>7}  screenshot")
    for r in rows:
        print(f"{r.page:<{width}}  {len(r.passed):>3} ok {('' if not r.failed else f'{len(r.failed)} FAILED'):>9}  "
              f"{r.png or '-'}")
        for f in r.failed:
            print(f"{'':<{width}}    FAILED {f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("CEREBRO_HOME") or ROOT / ".cerebro"),
                    help="the home folder of a finished `make run` (default: $CEREBRO_HOME or .cerebro)")
    ap.add_argument("--install", action="store_true", help=f"run `{INSTALL}` when Chromium is missing (root)")
    ap.add_argument("--prefect-port", type=int, default=4200)
    ap.add_argument("--mlflow-port", type=int, default=5000)
    ap.add_argument("--keep", action="store_true", help="leave the UIs running (stop them with `cerebro ui --stop`)")
    ap.add_argument("--running", action="store_true", help="check the UIs already running over this home folder "
                    "(`cerebro ui --no-wait`) instead of starting and stopping them")
    args = ap.parse_args()

    binary = ensure_chromium(args.install)
    home = args.home.resolve()
    if not (home / "mlflow.db").exists() and not (home / "prefect").exists():
        print(f"{home} holds no finished run (no mlflow.db, no prefect/): run `make run` first, or give --home.")
        return 2
    busy = [p for p in (args.prefect_port, args.mlflow_port) if port_busy(p)]
    if busy and not args.running:
        print(f"port(s) {busy} already in use: stop what listens there (`cerebro ui --stop`) or pick other ports.")
        return 2
    shots = home / "ui-check"
    shots.mkdir(parents=True, exist_ok=True)
    prefect_ui, mlflow_ui = f"http://127.0.0.1:{args.prefect_port}", f"http://127.0.0.1:{args.mlflow_port}"

    if not args.running:
        print(f"starting the UIs over {home} (cerebro ui --no-wait) ...", flush=True)
        t0 = time.monotonic()
        start_ui(home, args.prefect_port, args.mlflow_port)
        print(f"up in {time.monotonic() - t0:.0f} s; opening pages ...", flush=True)
    browser = Browser(binary)
    try:
        rows = check_prefect(browser, prefect_ui, mlflow_ui, shots)
        rows += check_mlflow(browser, mlflow_ui, shots)
    finally:
        if not (args.keep or args.running):
            stop_ui(home)
    print_table(rows)
    failed = sum(bool(r.failed) for r in rows)
    print(f"\n{len(rows) - failed} of {len(rows)} pages passed every check; screenshots in {shots}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
