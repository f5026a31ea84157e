"""Screenshots of MLflow's UI for the README, taken from real segzoo runs: ``docs/img/mlflow-*.png``.

    apt-get install -y chromium      # Debian's Chromium; no Python package is needed beyond segzoo's own
    python docs/screenshots.py       # 2-3 minutes on two CPU cores

In a temporary folder it trains ``segzoo compare --archs unet,fcn8s --epochs 8`` on twelve synthetic 64x64 images
into a SQLite store, serves that store with ``mlflow server`` on 127.0.0.1 only, and drives headless Chromium
through the DevTools protocol over a pipe (no open debugging port) to three pages: the runs table with the
comparison's parent run unfolded, MLflow's compare view of the two networks, and one run's metric charts.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from segzoo.tracking.metadata import MODEL_TRAINING_VIEW  # MLflow 3.17 shows its GenAI pages unless told

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--override", "synthetic#num_images=12", "--override", "synthetic#size=64", "--override", "patch_size=[64,64]",
        "--override", "batch_size=2"]
WIDTH, HEIGHT = 1600, 1000


def make_runs(folder: Path) -> tuple[str, dict]:
    """A tiny comparison logged to ``folder/mlflow.db``; returns the store's URI and the comparison's state."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "2"}
    subprocess.run([sys.executable, "-m", "segzoo", "compare", "--bundle", str(ROOT / "bundles" / "pyconvunet"), "--archs",
                    "unet,fcn8s", "--epochs", "8", "--repeats", "1", "--panel_images", "2", *TINY, "--output",
                    str(folder / "compare"), "--tracking_uri", uri], cwd=folder, env=env, check=True)
    return uri, json.loads((folder / "compare" / "compare_state.json").read_text())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(uri: str, folder: Path, timeout: float = 180) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 (one worker) for the duration of the block; yields its base URL."""
    port = free_port()
    log = (folder / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1"], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # its own process group, so its workers stop with it
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow server did not start; see {folder / 'server.log'}") from None
                time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        log.close()


class Chromium:
    """Headless Chromium driven through the DevTools protocol on fds 3/4 (``--remote-debugging-pipe``)."""

    def __init__(self, executable: str, profile: Path, width: int, height: int) -> None:
        to_browser, self._commands = os.pipe()
        self._replies, from_browser = os.pipe()

        def pipes_as_fds_3_and_4() -> None:  # in the child, before exec: what Chromium reads and writes
            read, write = fcntl.fcntl(to_browser, fcntl.F_DUPFD, 10), fcntl.fcntl(from_browser, fcntl.F_DUPFD, 10)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.process = subprocess.Popen(
            [executable, "--headless", "--remote-debugging-pipe", "--no-sandbox",  # no sandbox: containers run as root
             "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", f"--user-data-dir={profile}", "about:blank"],
            close_fds=False, preexec_fn=pipes_as_fds_3_and_4, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._id, self._session = b"", 0, None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.resize(width, height)

    def call(self, method: str, **params: object) -> dict:
        """Send one command and return its result (events that arrive meanwhile are dropped)."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str) -> object:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def open(self, url: str, text: str, timeout: float = 60) -> None:
        """Load ``url`` and wait until the page shows ``text``."""
        self.call("Page.navigate", url=url)
        self.wait_for(text, timeout)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"document.body && document.body.innerText.includes({json.dumps(text)})"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the page never showed {text!r}")
            time.sleep(0.3)

    def click(self, selector: str, text: str | None = None) -> None:
        """Click the first visible element matching ``selector`` (whose text is ``text``, if given)."""
        self.press(f"""[...document.querySelectorAll({json.dumps(selector)})].find(e => e.offsetParent !== null &&
            ({json.dumps(text)} === null || e.innerText.trim() === {json.dumps(text)}))""")

    def press(self, element: str, timeout: float = 20) -> None:
        """Press and release the mouse on the element the JavaScript expression ``element`` finds (waiting for it to
        appear), as a user would: menus that open on mouse-down open."""
        deadline = time.monotonic() + timeout
        while (box := self.evaluate(f"""(() => {{
            const el = {element};
            if (!el) return null;
            el.scrollIntoView({{block: "nearest"}});
            const r = el.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing to click: {element}")
            time.sleep(0.3)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
        time.sleep(0.3)

    def choose(self, field: str, option: str) -> None:
        """Pick ``option`` in the select box found by the JavaScript expression ``field``: type it, click it."""
        self.press(field)
        self.call("Input.insertText", text=option)
        self.click(".du-bois-light-select-item-option", option)
        for kind in ("keyDown", "keyUp"):  # close the list, which covers what is below it
            self.call("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape", windowsVirtualKeyCode=27)

    def resize(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def screenshot(self, path: Path, height: int | None = None, settle: float = 2.0) -> None:
        """Write the window (its top ``height`` pixels, if given) to ``path`` as PNG."""
        time.sleep(settle)  # charts animate in
        clip = {"clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}} if height else {}
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png", **clip)["data"]))
        print(f"wrote {path}")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        os.close(self._commands)
        os.close(self._replies)


def close_assistant(browser: Chromium) -> None:
    """Fold MLflow 3's assistant panel, which takes a third of the window (it stays folded once folded)."""
    close = "button[aria-label='Close']"
    if browser.evaluate(f"[...document.querySelectorAll({json.dumps(close)})].some(e => e.offsetParent !== null)"):
        browser.click(close)


def runs_table(browser: Chromium, url: str, experiment_id: str, state: dict, path: Path) -> None:
    """The experiment's runs: the comparison's parent unfolded to its children, with their logged models, descriptions
    and held-out MIoU (the column picker toggles: a fresh browser profile starts from MLflow's default columns)."""
    browser.open(f"{url}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING_VIEW}", "compare-")
    close_assistant(browser)
    browser.click("button[data-component-id*='runnamecellrenderer']")  # unfold the parent's children
    browser.wait_for("unet-")
    for column in ("Description", "test_foreground_iou"):  # on; Models (each run's logged model) is on by default
        if not browser.evaluate("Boolean(document.querySelector('[role=dialog] .du-bois-light-tree'))"):
            browser.click("button", "Columns")
            browser.wait_for("Parameters (")
        browser.click("[role=dialog] .du-bois-light-tree-node-content-wrapper", column)
    browser.click("button", "Columns")  # closes the column picker
    browser.screenshot(path, height=400)


def compare_view(browser: Chromium, url: str, experiment_id: str, state: dict, path: Path) -> None:
    """MLflow's compare page of the two networks, parameters reduced to those that differ."""
    runs = quote(json.dumps([entry["run_id"] for entry in state["archs"].values()]))
    experiments = quote(json.dumps([experiment_id]))
    browser.open(f"{url}/#/compare-runs?runs={runs}&experiments={experiments}&{MODEL_TRAINING_VIEW}", "Parameters")
    close_assistant(browser)
    browser.click("button", "Clear All")  # MLflow's first guess plots a system metric against every differing key
    for label, name in (
        ("Parameters:", "architecture"),
        ("Metrics:", "val_foreground_iou"),
        ("Metrics:", "test_foreground_iou"),
    ):
        label_div = f"[...document.querySelectorAll('div')].find(e => e.innerText === {json.dumps(label)} && !e.children.length)"
        browser.choose(f"{label_div}.nextElementSibling.querySelector('input')", name)
    browser.click("[role=switch]")  # "Show diff only" in the parameter table
    browser.evaluate("document.querySelector('h2, h1').scrollIntoView()")
    browser.resize(WIDTH, 1500)  # down to the parameters that differ
    browser.screenshot(path)
    browser.resize(WIDTH, HEIGHT)


def run_charts(browser: Chromium, url: str, experiment_id: str, state: dict, path: Path) -> None:
    """One network's run page: per-epoch training loss and validation curves, held-out scores and complexity."""
    run_id = next(iter(state["archs"].values()))["run_id"]
    browser.open(f"{url}/#/experiments/{experiment_id}/runs/{run_id}/model-metrics?{MODEL_TRAINING_VIEW}", "val_foreground_iou")
    close_assistant(browser)
    browser.resize(WIDTH, 1320)  # the third row holds the validation curves
    browser.screenshot(path)
    browser.resize(WIDTH, HEIGHT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "img", help="folder of the PNGs (default docs/img)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium or Chrome executable")
    parser.add_argument("--workdir", type=Path, help="keep the store and runs here; a rerun reuses the finished comparison "
                                                     "(default: a temporary folder, removed at the end)")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        folder = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="segzoo-screenshots-")))
        folder.mkdir(parents=True, exist_ok=True)
        uri, state = make_runs(folder)
        with mlflow_server(uri, folder) as url:
            from mlflow.tracking import MlflowClient

            experiment_id = MlflowClient(uri).get_run(state["parent_run_id"]).info.experiment_id
            browser = Chromium(args.chromium, folder / "chromium", WIDTH, HEIGHT)
            try:
                for shoot, name in ((runs_table, "mlflow-runs.png"), (compare_view, "mlflow-compare.png"),
                                    (run_charts, "mlflow-run-charts.png")):
                    shoot(browser, url, experiment_id, state, args.output / name)
            finally:
                browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
