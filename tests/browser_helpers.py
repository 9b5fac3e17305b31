"""Helpers of the browser test: a throw-away JupyterLab server and a Playwright page that drives a notebook.

The server serves copies of the notebooks from a temporary folder, with its own settings (autosave off,
no news, no update checks), so a test run never modifies the repository and never reaches the internet.
"""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "screenshots"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
STDERR_MIME = "application/vnd.jupyter.stderr"
# what an exception looks like once JupyterLab renders it (IPython's traceback, or its short form for SyntaxError)
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|^\s*\w*(Error|Exception|Interrupt)\b.*$|^Cell In\[\d+\]",
                        re.MULTILINE)
# a widget shown as plain text means the browser has no widget manager
WIDGET_REPR = re.compile(r"^(VBox|HBox|Box|GridBox|Tab|Accordion|Output|Button|\w+Slider|\w+Text|Dropdown|"
                         r"Checkbox|\w+Progress|HTML|Label)\((children|value|layout|description|outputs)=")
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
    # every cell stays in the page (no virtual scrolling), so outputs can be read without scrolling
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
TQDM_TEXT = re.compile(r"\d+%\|")


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LabServer:
    """JupyterLab on 127.0.0.1 with a random token, serving ``root``; ``stop()`` kills its process group."""

    def __init__(self, root, env=None, startup_timeout=120):
        self.root = Path(root)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.root.parent / "jupyter-lab.log"
        home = self.root.parent / "lab-home"
        settings = home / "user-settings"
        for name, value in LAB_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        full_env = dict(os.environ, **(env or {}))
        full_env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
                        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), PYTHONUNBUFFERED="1")
        command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
                   f"--port={self.port}", "--port-retries=0", f"--IdentityProvider.token={self.token}",
                   f"--ServerApp.root_dir={self.root}",
                   f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={home / 'workspaces'}",
                   "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                   "--LabApp.extension_manager=readonly"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
            command.append("--allow-root")
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, cwd=self.root, env=full_env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait(startup_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with status {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=5) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"jupyter lab did not answer within {timeout} s:\n{self.log()}")

    def log(self):
        """The server's output so far (for failure messages)."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def _api(self, path, method="GET"):
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            body = reply.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self):
        """Shut down every running kernel (between notebooks, to free memory)."""
        for kernel in self._api("kernels"):
            self._api(f"kernels/{kernel['id']}", method="DELETE")

    def notebook_url(self, relative):
        """The address that opens ``relative`` (a path under the served folder) in JupyterLab."""
        return f"{self.url}/lab/tree/{relative}?token={self.token}&reset"

    def stop(self):
        """Stop the server and its kernels: kernels through the API (they run in sessions of their own),
        then SIGTERM to the server's process group, then SIGKILL."""
        if self.process.poll() is None:
            try:
                self.shutdown_kernels()
            except OSError:
                pass
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
            except ProcessLookupError:
                pass
        try:  # nothing the server started in its own group survives it
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()


def copy_notebooks(source, target):
    """Copy the folder ``source`` (the lessons and anything beside them) to ``target``, which the server serves."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return sorted(Path(target).glob("*.ipynb"))


def stored_widget_cells(path):
    """Indices (among code cells) of the cells whose saved outputs hold a widget (tqdm bars left out)."""
    cells = [c for c in json.loads(Path(path).read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    found = []
    for i, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_MIME in data and not TQDM_TEXT.search("".join(data.get("text/plain", ""))):
                found.append(i)
                break
    return found


def launch_browser(playwright):
    """Debian's Chromium, headless, through Playwright (never a downloaded browser)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


class NotebookPage:
    """One notebook open in JupyterLab: run it from the menu, wait for it, read what its outputs show."""

    def __init__(self, page, server, relative, timeout_s=60):
        self.page, self.server, self.name = page, server, Path(relative).stem
        page.set_default_timeout(timeout_s * 1000)
        page.goto(server.notebook_url(relative))
        self.notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
        self.notebook.wait_for(state="visible")
        self.wait_for_kernel_idle(timeout_s * 2)

    def _panel(self, selector):
        return self.page.locator(f".jp-NotebookPanel:not(.lm-mod-hidden) {selector}")

    def kernel_status(self):
        """The toolbar's execution indicator: 'idle', 'busy', 'starting', ...; '' while no kernel is attached."""
        name = self._panel(".jp-Toolbar-kernelName")
        if name.count() == 0 or name.first.inner_text().strip() in ("", "No Kernel"):
            return ""
        indicator = self._panel(".jp-Notebook-ExecutionIndicator")
        return (indicator.first.get_attribute("data-status") or "") if indicator.count() else ""

    def wait_for_kernel_idle(self, timeout_s):
        """Wait until a kernel is attached and idle; accept the 'Select Kernel' dialog if JupyterLab asks."""
        deadline = time.monotonic() + timeout_s
        while self.kernel_status() != "idle":
            dialog = self.page.locator(".jp-Dialog", has_text="Select Kernel")
            if dialog.count():
                dialog.locator("button.jp-mod-accept").click()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: kernel not idle after {timeout_s} s "
                                   f"(status {self.kernel_status()!r})")
            time.sleep(0.25)

    def run_all(self, timeout_s):
        """Run > Run All Cells from the menu bar, then wait until every code cell has run and the kernel is idle."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        self.page.locator('.lm-Menu-item:has(.lm-Menu-itemLabel:text-is("Run All Cells"))').click()
        self.wait_until_done(timeout_s)

    def prompts(self):
        """The input prompts of the code cells, e.g. ['[1]:', '[*]:', '[ ]:']."""
        return [text.strip() for text in self.notebook.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()]

    def wait_until_done(self, timeout_s):
        """Wait until no code cell is queued or running and the kernel is idle (twice in a row, to be sure)."""
        deadline, calm = time.monotonic() + timeout_s, 0
        while calm < 2:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: still running after {timeout_s} s: prompts {self.prompts()}")
            time.sleep(0.5)
            busy = any("*" in p for p in self.prompts()) or self.kernel_status() != "idle"
            calm = 0 if busy else calm + 1

    def unexecuted_cells(self):
        """Indices of code cells with source that show no execution number (run-all stops at an error)."""
        cells = self.notebook.locator(".jp-CodeCell")
        missing = []
        for i in range(cells.count()):
            source = cells.nth(i).locator(".jp-InputArea-editor").inner_text().strip()
            prompt = cells.nth(i).locator(".jp-InputPrompt").inner_text().strip()
            if source and not re.fullmatch(r"\[\d+\]:", prompt):
                missing.append(i)
        return missing

    def error_outputs(self):
        """Text of every output that shows an exception."""
        texts = self.notebook.locator(f'.jp-OutputArea-output[data-mime-type="{STDERR_MIME}"]').all_inner_texts()
        return [text for text in texts if ERROR_TEXT.search(text)]

    def widget_problems(self, grace_s=10):
        """What is wrong with the widgets: an 'Error displaying widget', a view stuck at 'Loading widget...'
        (its model never came), a widget shown as plain text (no widget manager)."""
        outputs = self.notebook.locator(".jp-OutputArea-output")
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any("Loading widget" in t for t in outputs.all_inner_texts()):
            time.sleep(0.5)
        problems = []
        for text in outputs.all_inner_texts():
            if re.search(r"Error displaying widget|Error rendering|Loading widget\.\.\.", text):
                problems.append(text.strip()[:200])
            elif WIDGET_REPR.search(text.strip()):
                problems.append(f"a widget shown as text (no widget manager?): {text.strip()[:120]}")
        return problems

    def widget_cells(self):
        """Indices (among code cells) of the cells whose outputs show a rendered widget."""
        cells = self.notebook.locator(".jp-CodeCell")
        return [i for i in range(cells.count())
                if cells.nth(i).locator(".jp-OutputArea-output > .jupyter-widgets").count()]

    def screenshot(self, suffix=""):
        """Save the window to screenshots/NAME[-suffix].png and each cell showing a widget to
        screenshots/NAME[-suffix]-cellK.png (the notebook scrolls inside the page); return the paths."""
        SCREENSHOTS.mkdir(exist_ok=True)
        stem = f"{self.name}{'-' + suffix if suffix else ''}"
        paths = [SCREENSHOTS / f"{stem}.png"]
        self.page.screenshot(path=str(paths[0]))
        cells = self.notebook.locator(".jp-CodeCell")
        for i in self.widget_cells():
            paths.append(SCREENSHOTS / f"{stem}-cell{i}.png")
            cells.nth(i).screenshot(path=str(paths[-1]))
        return paths

    # ---- controls of an ipywidgets panel, found by their description labels

    def control(self, label, scope=None):
        """The first ipywidgets control whose description starts with ``label`` (a string, case ignored, or a
        compiled regular expression searched in the description); its box holds the label and the input."""
        return self._controls(label, scope or self.notebook).first

    def _controls(self, label, root):
        # ``root`` is the page when the result serves as a ``has=`` filter (those are relative to the outer locator)
        pattern = label if isinstance(label, re.Pattern) else re.compile(rf"^\s*{re.escape(label)}", re.I)
        return root.locator(".widget-inline-hbox").filter(has=self.page.locator(".widget-label", has_text=pattern))

    def set_value(self, label, value, scope=None):
        """Type ``value`` into the control described by ``label`` (text, number or a slider's readout) + Enter;
        for a dropdown, pick the option whose text is ``value``."""
        box = self.control(label, scope)
        if box.locator("select").count():  # a Dropdown
            box.locator("select").first.select_option(label=str(value))
            return
        field = box.locator("input[type='text'], input[type='number'], textarea, .widget-readout").first
        if field.get_attribute("contenteditable") is not None:  # a slider's readout
            field.click()
            self.page.keyboard.press("Control+A")
            self.page.keyboard.type(str(value))
        else:
            field.fill(str(value))
        self.page.keyboard.press("Enter")
        field.blur()

    def shown_value(self, label, scope=None):
        """What the control described by ``label`` shows: a slider's readout, a field's text, a dropdown's choice
        (a readout's minus sign, U+2212, as an ASCII hyphen; a dropdown's no-break spaces as spaces)."""
        box = self.control(label, scope)
        if box.locator("select").count():
            text = box.locator("select").first.evaluate("select => select.selectedOptions[0]?.text ?? ''")
            return text.replace("\xa0", " ").strip()
        field = box.locator("input[type='text'], input[type='number'], textarea, .widget-readout").first
        if field.get_attribute("contenteditable") is not None:
            return field.inner_text().strip().replace("\u2212", "-")
        return field.input_value().strip()

    def button(self, text, scope=None):
        """The first widget button whose text is ``text``."""
        return self._buttons(text, scope or self.notebook).first

    @staticmethod
    def _buttons(text, root):
        return root.locator("button.jupyter-button", has_text=re.compile(rf"^\s*{re.escape(text)}\s*$"))

    def panel_with_button(self, text):
        """The code cell (controls and outputs) that shows the widget button ``text``."""
        return self.notebook.locator(".jp-CodeCell").filter(has=self._buttons(text, self.page)).first

    def panel_with_control(self, label):
        """The code cell (controls and outputs) that shows the control described by ``label``."""
        return self.notebook.locator(".jp-CodeCell").filter(has=self._controls(label, self.page)).first

    def progress_fraction(self, scope=None):
        """How far the first progress bar in ``scope`` is filled, 0.0 to 1.0 (-1.0 when there is none)."""
        scope = scope or self.notebook
        bars = scope.locator(".widget-hprogress .progress-bar, .widget-vprogress .progress-bar")
        if bars.count() == 0:
            return -1.0
        width = bars.first.evaluate("bar => (bar.closest('.widget-vprogress') ? bar.style.height : bar.style.width)"
                                    " || '0%'")
        return float(width.rstrip("%")) / 100

    def figure_sources(self, scope=None):
        """The sources of the images in ``scope`` (they change when a figure is redrawn)."""
        scope = scope or self.notebook
        return scope.locator("img").evaluate_all("imgs => imgs.map(img => img.src)")

    def wait_until(self, predicate, timeout_s, message):
        """Poll ``predicate`` until it is true; AssertionError with ``message`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {message} (waited {timeout_s} s)")
            time.sleep(0.25)
