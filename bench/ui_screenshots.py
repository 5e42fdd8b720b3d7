"""What a person sees in the Prefect UI after a deployment run: a repeatable capture.

    .venv/bin/python bench/ui_screenshots.py [--out docs/ui]

Starts a private PostgreSQL-backed Prefect server (the same helpers as the test fixture), creates
the `plan-executor` process pool, deploys this checkout's prefect.yaml (`prefect deploy --all`),
starts a process worker, and runs a scripted plan with `prefect deployment run
'execute-plan/manual' --watch`: the demo crate's plan with the agents played by the stand-in
Messages API (cli/demo.py); the owner of phase 1 claims success without doing anything, so
phase 1 is blocked, phase 2 completes and phase 3 (which depends on phase 1) is skipped.

Then headless Chromium (Debian's `chromium`), driven over the DevTools protocol because the
server requires its credential (the UI keeps it in localStorage, which the command line cannot
set), captures the pages a person opens: the runs list, the plan run's graph, phase 1's run (its
task runs), phase 1's page (artifact), the final report and the nightly deployment (schedule).
Every page is waited for until the text it must show is there; the script fails otherwise.
Everything started is stopped at the end. No internet; 4-6 minutes on 2 cores (most of it
`prefect deploy` and the worker's start).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CHECKOUT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CHECKOUT))

from backend.server import ServerConfig, start_server, stop_server  # noqa: E402
from cli.demo import ScriptedAgents, demo_plan, demo_scripts, make_crate  # noqa: E402
from tasks.agent.standin import StandinMessagesAPI  # noqa: E402
from tasks.shell import run  # noqa: E402
from tests.deploy._procs import PREFECT, base_env, start_worker  # noqa: E402
from tests.prefect_fixture import free_port  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WINDOW = (1400, 1000)
POOL = "plan-executor"
TIMEZONE = "Europe/Berlin"
STANDIN_KEY = "sk-ant-standin-ui-screenshots"


# -- the run ---------------------------------------------------------------------------------


@dataclass
class RunSeen:
    ui_url: str
    flow_run_id: str
    phases: dict[str, dict[str, Any]]
    """Phase id → its subflow run (as the API returns it)."""
    artifacts: dict[str, dict[str, Any]]
    """Artifact key → artifact, for the plan run and its phase runs."""
    nightly_id: str
    run: dict[str, Any]


def scripted_plan(root: Path) -> Path:
    """The demo crate; phase 3 depends on phase 1 only, whose owner claims work it did not do."""
    text = demo_plan().replace("**Dependencies:** Phase 1, Phase 2", "**Dependencies:** Phase 1")
    return make_crate(root / "tiny-crate", plan_text=text)


def lying_agents() -> ScriptedAgents:
    scripts = demo_scripts()
    scripts["1"].edits = []
    scripts["1"].claim = "Status: COMPLETE. Created tests/alpha.rs; 1 test passed."
    return ScriptedAgents(scripts)


def deploy_and_run(root: Path, api_url: str, auth: str, standin_url: str) -> tuple[str, dict]:
    plan = scripted_plan(root)
    repo = plan.parents[2]
    env = base_env(root / "cli-home", api_url)
    env.update(
        PREFECT_API_AUTH_STRING=auth,
        PLAN_EXECUTOR_TIMEZONE=TIMEZONE,
        PLAN_EXECUTOR_NIGHTLY_REPO=str(repo),
    )
    (root / "cli-home").mkdir(exist_ok=True)
    for argv in (
        [PREFECT, "work-pool", "create", POOL, "--type", "process", "--overwrite"],
        [PREFECT, "deploy", "--all", "--no-prompt"],
    ):
        done = run(argv, cwd=CHECKOUT, env=env, timeout_s=240)
        if not done.ok:
            raise SystemExit(f"{' '.join(argv[1:])} failed:\n{done.output}")
    os.environ["PREFECT_API_AUTH_STRING"] = auth  # start_worker copies it from here
    worker = start_worker(
        POOL,
        home=root / "cli-home",
        api_url=api_url,
        cwd=root / "cli-home",
        extra_env={"ANTHROPIC_BASE_URL": standin_url, "ANTHROPIC_API_KEY": STANDIN_KEY},
    )
    try:
        started = run(
            [
                PREFECT,
                "deployment",
                "run",
                "execute-plan/manual",
                "--param",
                f"plan_path={plan}",
                "--param",
                "options=" + json.dumps({"repo": str(repo)}),
                "--watch",
                "--watch-interval",
                "2",
            ],
            cwd=CHECKOUT,
            env=env,
            timeout_s=400,
        )
    finally:
        worker.stop()
    match = re.search(r"UUID: ([0-9a-f-]{36})", started.output)
    if not match:
        raise SystemExit(f"no flow run started:\n{started.output}\n{worker.log_text()[-4000:]}")
    return match.group(1), env


def read_run(api_url: str, auth: str, flow_run_id: str) -> RunSeen:
    user, _, password = auth.partition(":")
    with httpx.Client(base_url=api_url, auth=(user, password), timeout=30) as http:
        parent = http.get(f"/flow_runs/{flow_run_id}").json()
        children = http.post(
            "/flow_runs/filter",
            json={"flow_runs": {"parent_flow_run_id": {"any_": [flow_run_id]}}},
        ).json()
        ids = [flow_run_id] + [c["id"] for c in children]
        found = http.post(
            "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": ids}}}
        ).json()
        nightly = http.get("/deployments/name/execute-ready-plans/nightly").json()
    phases = {}
    for child in children:
        match = re.match(r"phase-([^:]+)", child["name"])
        if match:
            phases[match.group(1)] = child
    return RunSeen(
        ui_url=api_url.removesuffix("/api"),
        flow_run_id=flow_run_id,
        phases=phases,
        artifacts={a["key"]: a for a in found if a.get("key")},
        nightly_id=nightly["id"],
        run=parent,
    )


# -- the browser -----------------------------------------------------------------------------


class Chromium:
    """Headless Chromium over the DevTools protocol: one tab, navigate, wait for text, capture."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._ws: Any = None
        self._next = 0
        self.text_dir: Path | None = None

    async def __aenter__(self) -> Chromium:
        import websockets

        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            await asyncio.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        async with httpx.AsyncClient() as http:
            targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        page = next(t for t in targets if t["type"] == "page")
        self._ws = await websockets.connect(page["webSocketDebuggerUrl"], max_size=None)
        await self.call("Page.enable")
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        await self._ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        while True:
            message = json.loads(await self._ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result") or {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        return result.get("result", {}).get("value")

    async def login(self, ui_url: str, auth: str) -> None:
        """What the UI's login form stores: the credential, base64, under `prefect-password`."""
        await self.call("Page.navigate", {"url": ui_url})
        await asyncio.sleep(2)
        token = base64.b64encode(auth.encode()).decode()
        await self.evaluate(f"localStorage.setItem('prefect-password', '{token}')")

    async def capture(
        self,
        url: str,
        out: Path,
        must_show: list[str],
        settle_s: float = 2.5,
        tab: str | None = None,
        scroll_to: str | None = None,
    ) -> None:
        await self.call("Page.navigate", {"url": url})
        deadline = time.monotonic() + 45
        loaded = (
            f"location.href.startsWith({json.dumps(url)}) && document.readyState === 'complete'"
        )
        first = f"document.body.innerText.includes({json.dumps(must_show[0])})"
        while not await self.evaluate(f"{loaded} && !!document.body && {first}"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not load or never showed {must_show[0]!r}")
            await asyncio.sleep(0.5)
        if tab is not None:  # the page's tabs do not follow `?tab=` on a fresh load: click it
            click = (
                "(() => { const b = [...document.querySelectorAll('body *')].find(e => "
                f"e.children.length === 0 && (e.innerText || '').trim() === {json.dumps(tab)}); "
                "if (b) { b.click(); return true; } return false; })()"
            )
            while not await self.evaluate(click):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} has no tab {tab!r}")
                await asyncio.sleep(0.5)
        checks = " && ".join(
            f"document.body.innerText.includes({json.dumps(text)})" for text in must_show
        )
        while not await self.evaluate(f"!!document.body && ({checks})"):
            if time.monotonic() > deadline:
                body = await self.evaluate("document.body ? document.body.innerText : ''")
                if self.text_dir is not None:
                    (self.text_dir / out.with_suffix(".txt").name).write_text(str(body))
                raise RuntimeError(f"{url} never showed {must_show}; it shows:\n{body[:2000]}")
            await asyncio.sleep(0.5)
        if scroll_to is not None:  # bring this text to the bottom of the window
            await self.evaluate(
                "(() => { const e = [...document.querySelectorAll('body *')].find(x => "
                f"x.children.length === 0 && (x.innerText || '').trim() === {json.dumps(scroll_to)});"
                " if (e) e.scrollIntoView({block: 'end'}); })()"
            )
        await asyncio.sleep(settle_s)  # the graph and the markdown render after the text
        shot = await self.call("Page.captureScreenshot", {"format": "png"})
        out.write_bytes(base64.b64decode(shot["data"]))
        print(f"{out} ({out.stat().st_size // 1024} KB): {url}")
        if self.text_dir is not None:  # what the page says, for a reader without the image
            body = await self.evaluate("document.body.innerText")
            (self.text_dir / out.with_suffix(".txt").name).write_text(str(body))


async def capture_all(
    seen: RunSeen, auth: str, out: Path, profile: Path, text_dir: Path | None
) -> None:
    ui = seen.ui_url
    one, three = seen.phases["1"], seen.phases["3"]
    page_key = next(k for k in seen.artifacts if k.endswith("-phase-1"))
    report_key = next(k for k in seen.artifacts if k.endswith("-report"))
    run_name = seen.run["name"]
    async with Chromium(profile) as browser:
        browser.text_dir = text_dir
        await browser.login(ui, auth)
        await browser.capture(
            f"{ui}/runs",
            out / "runs.png",
            [run_name, "phase-1: Alpha tests"],
            scroll_to="Work Queue",
        )
        await browser.capture(
            f"{ui}/runs/flow-run/{seen.flow_run_id}", out / "flow-run.png", [run_name], settle_s=6
        )
        await browser.capture(
            f"{ui}/runs/flow-run/{seen.flow_run_id}",
            out / "subflows.png",
            [run_name, "phase-3: Report module", "Skipped"],
            tab="Subflow Runs",
        )
        await browser.capture(
            f"{ui}/runs/flow-run/{one['id']}",
            out / "phase-run.png",
            [one["name"], "phase-gates"],
            tab="Task Runs",
        )
        await browser.capture(
            f"{ui}/runs/flow-run/{one['id']}",
            out / "phase-artifacts.png",
            [one["name"], "phase-1"],
            tab="Artifacts",
        )
        await browser.capture(
            f"{ui}/artifacts/artifact/{seen.artifacts[page_key]['id']}",
            out / "phase-page.png",
            ["Checks (the evidence)", "What the agents claimed"],
        )
        await browser.capture(
            f"{ui}/runs/flow-run/{three['id']}",
            out / "skipped-phase.png",
            [three["name"], "Skipped"],
        )
        await browser.capture(
            f"{ui}/artifacts/artifact/{seen.artifacts[report_key]['id']}",
            out / "report.png",
            ["Phase Summary"],
        )
        await browser.capture(
            f"{ui}/deployments/deployment/{seen.nightly_id}",
            out / "nightly.png",
            ["nightly", "02:00 every night (timezone: in the tags)", f"02:00 {TIMEZONE}"],
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CHECKOUT / "docs" / "ui")
    parser.add_argument("--text", type=Path, help="also keep each page's text in this folder")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    root = Path(tempfile.mkdtemp(prefix="plan-executor-ui-"))
    config = ServerConfig(home=root / "home", port=free_port())
    try:
        info = start_server(config, timeout_s=120)
        auth = info.client_env()["PREFECT_API_AUTH_STRING"]
        with StandinMessagesAPI(responder=lying_agents(), auto_summary=False) as standin:
            flow_run_id, _ = deploy_and_run(root, info.api_url, auth, standin.base_url)
        seen = read_run(info.api_url, auth, flow_run_id)
        print(
            f"run {seen.run['name']!r}: {seen.run['state']['name']}: {seen.run['state']['message']}"
        )
        for _, child in sorted(seen.phases.items()):
            print(f"  {child['name']}: {child['state']['name']}: {child['state']['message']}")
        if args.text:
            args.text.mkdir(parents=True, exist_ok=True)
        asyncio.run(capture_all(seen, auth, args.out, root / "chromium", args.text))
    finally:
        stop_server(config)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
