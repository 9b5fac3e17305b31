"""Setting up (README's two commands): the torch wheels make installs, make lab as root and as an ordinary user,
and the panel tests' second run with Colab's ipywidgets."""
import ast
import http.server
import os
import pwd
import shlex
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHOICE = ROOT / "tools" / "torch_choice.py"
UNKNOWN = "TORCH='gpu' is not a choice; use TORCH=auto (the default), cpu, cuda or default.\n"
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed here")


# ----------------------------------------------------------------------------- fakes

# proxies, the choice itself, and what an enclosing make (make test) hands down to its children
NOT_PASSED = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "torch", "makeflags", "mflags", "makelevel",
              "makeoverrides"}


def quiet_env(**extra):
    """This environment without proxies, a TORCH setting or an enclosing make's flags, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if k.lower() not in NOT_PASSED}, **extra}


def fake_bin(folder, nvidia_smi=None):
    """A folder for PATH holding, when ``nvidia_smi`` is a shell body, an executable nvidia-smi running it."""
    folder.mkdir(exist_ok=True)
    if nvidia_smi is not None:
        tool = folder / "nvidia-smi"
        tool.write_text(f"#!/bin/sh\n{nvidia_smi}\n")
        tool.chmod(0o755)
    return folder


LISTS_A_GPU = 'echo "GPU 0: NVIDIA Test GPU (UUID: GPU-0)"'
FAILS = 'echo "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver." >&2; exit 9'


class Index(http.server.BaseHTTPRequestHandler):
    """A wheel index that answers every GET with an empty page and remembers what it was asked."""

    def do_GET(self):
        self.server.asked.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def index():
    """The address of a local index that answers, and the list of paths it was asked for."""
    server = http.server.HTTPServer(("127.0.0.1", 0), Index)
    server.asked = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/whl/cpu", server.asked
    server.shutdown()
    server.server_close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_index():
    """An address where nothing listens: the index does not answer."""
    return f"http://127.0.0.1:{free_port()}/whl/cpu"


def choose(path_dir, *args, **env):
    """Run tools/torch_choice.py with PATH=``path_dir``: (exit status, standard output, standard error)."""
    r = subprocess.run([sys.executable, str(CHOICE), *args], env=quiet_env(PATH=str(path_dir), **env),
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


# ----------------------------------------------------------------------------- the torch choice

def test_no_gpu_and_the_index_answers_gives_the_cpu_wheels(tmp_path, index):
    url, asked = index
    code, out, err = choose(fake_bin(tmp_path / "bin"), "--index", url)
    assert (code, out) == (0, f"--extra-index-url {url}\n")
    assert asked == ["/whl/cpu"] and "CPU-only" in err and err.count("\n") == 1


def test_no_gpu_and_the_index_silent_gives_the_default_wheels(tmp_path):
    url = closed_index()
    code, out, err = choose(fake_bin(tmp_path / "bin"), "--index", url)
    assert (code, out) == (0, "\n")
    assert f"{url} did not answer" in err and "TORCH=cpu" in err


def test_an_index_that_never_replies_is_given_up_on_time(tmp_path):
    with socket.socket() as listener:  # accepts connections (the kernel's backlog) but never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        started = time.monotonic()
        code, out, err = choose(fake_bin(tmp_path / "bin"), "--index",
                                f"http://127.0.0.1:{listener.getsockname()[1]}/", "--timeout", "1")
        took = time.monotonic() - started
    assert (code, out) == (0, "\n") and "within 1 s" in err
    assert took < 10, f"the probe took {took:.1f} s with --timeout 1"


def test_a_gpu_gives_the_default_wheels_without_asking_the_index(tmp_path, index):
    url, asked = index
    code, out, err = choose(fake_bin(tmp_path / "bin", LISTS_A_GPU), "--index", url)
    assert (code, out) == (0, "\n") and "nvidia-smi lists a GPU" in err
    assert asked == []


def test_an_nvidia_smi_that_finds_no_gpu_counts_as_none(tmp_path, index):
    url, _ = index
    assert choose(fake_bin(tmp_path / "bin", FAILS), "--index", url)[:2] == (0, f"--extra-index-url {url}\n")


@pytest.mark.parametrize("torch, gpu, wants_cpu_index", [
    ("cpu", LISTS_A_GPU, True),   # forced, even with a GPU and an index that does not answer
    ("CPU", None, True),
    ("cuda", None, False),        # plain PyPI, even without a GPU and with an index that answers
    ("default", None, False),
    ("auto", LISTS_A_GPU, False),
])
def test_torch_given_explicitly(tmp_path, index, torch, gpu, wants_cpu_index):
    url, asked = index
    target = url if torch in ("cuda", "default") else closed_index()
    code, out, _ = choose(fake_bin(tmp_path / "bin", gpu), "--torch", torch, "--index", target)
    assert code == 0 and out == (f"--extra-index-url {target}\n" if wants_cpu_index else "\n")
    assert asked == []  # an explicit choice asks nothing


def test_torch_is_read_from_the_environment(tmp_path):
    url = closed_index()
    assert choose(fake_bin(tmp_path / "bin"), "--index", url, TORCH="cpu")[:2] == (0, f"--extra-index-url {url}\n")


@pytest.mark.parametrize("how", ["option", "environment"])
def test_an_unknown_torch_value_gets_one_sentence(tmp_path, how):
    args, env = (["--torch", "gpu"], {}) if how == "option" else ([], {"TORCH": "gpu"})
    assert choose(fake_bin(tmp_path / "bin"), *args, **env) == (2, "", UNKNOWN)


def test_a_bad_timeout_gets_one_sentence(tmp_path):
    code, out, err = choose(fake_bin(tmp_path / "bin"), "--timeout", "0")
    assert code == 2 and out == "" and err.splitlines()[-1].endswith("'0' is not a positive number of seconds")


def test_the_choice_runs_on_python_3_9_without_the_venv():
    stdlib = getattr(sys, "stdlib_module_names", None)
    if stdlib is None:
        pytest.skip("Python before 3.10 cannot list its standard library")
    tree = ast.parse(CHOICE.read_text(encoding="utf-8"), feature_version=(3, 9))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(stdlib), imported - set(stdlib)


# ----------------------------------------------------------------------------- the Makefile

def make(*args, cwd=ROOT, env=None, timeout=120):
    return subprocess.run(["make", *args], cwd=cwd, env=env or quiet_env(), capture_output=True, text=True,
                          timeout=timeout)


def make_variable(name):
    """The value of a Makefile variable, as make expands it."""
    r = make("-s", "--eval", f"print-variable: ; @echo '$({name})'", "print-variable")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def recipe_lines(*args):
    """The commands ``make -n ARGS`` would run, continuation lines joined."""
    r = make("-n", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout.replace("\\\n", " ").splitlines()


FAKE_PYTHON = """#!/bin/sh
# stands in for python3 and the venv's python: logs what it is asked, runs only the torch choice for real
echo "$0 $*" >> "{log}"
case "$1" in
  *torch_choice.py) exec "{python}" "$@" ;;
  -m) [ "$2" = venv ] && mkdir -p "$3/bin" && cp "$0" "$3/bin/python" ;;
esac
exit 0
"""


@needs_make
@pytest.mark.parametrize("torch, cpu_index", [("cpu", True), ("default", False)])
def test_make_setup_installs_with_the_choice(tmp_path, torch, cpu_index):
    log, venv, url = tmp_path / "calls.log", tmp_path / "venv", closed_index()
    python = tmp_path / "python3"
    python.write_text(FAKE_PYTHON.format(log=log, python=sys.executable))
    python.chmod(0o755)
    r = make("setup", f"PYTHON={python}", f"VENV={venv}", f"TORCH={torch}", f"TORCH_INDEX={url}")
    assert r.returncode == 0, r.stdout + r.stderr
    calls = log.read_text().splitlines()
    requirements = [c for c in calls if "-r requirements.txt" in c]
    assert requirements == [f"{venv}/bin/python -m pip install " + (f"--extra-index-url {url} " if cpu_index else "")
                            + "-r requirements.txt"]
    assert calls.index(requirements[0]) < calls.index(f"{venv}/bin/python -m pip install --no-deps -e .")
    assert (venv / "bin" / ".installed").is_file()
    assert make("setup", f"PYTHON={python}", f"VENV={venv}").stdout.count("pip") == 0  # done once


@needs_make
def test_make_setup_with_an_unknown_torch_stops_before_creating_anything(tmp_path):
    r = make("setup", f"VENV={tmp_path / 'venv'}", "TORCH=gpu")
    assert r.returncode != 0 and UNKNOWN in r.stderr
    assert not (tmp_path / "venv").exists()


@needs_make
def test_panel_tests_rerun_with_ipywidgets_7(tmp_path):
    assert make_variable("IPYWIDGETS7").startswith("build/")  # ignored by git
    version, folder = make_variable("IPYWIDGETS7_VERSION"), tmp_path / "ipywidgets7"  # not installed there yet
    assert version.startswith("7.7.")
    lines = recipe_lines("test", "SETUP=", f"VENV={sys.prefix}", f"IPYWIDGETS7={folder}")
    install = next(line for line in lines if "--target" in line)
    assert f"ipywidgets=={version}" in install and "--no-deps" in install
    assert "widgetsnbextension==3." in install and "jupyterlab_widgets==1." in install
    rerun = [line for line in lines if f"PYTHONPATH={folder}" in line]
    assert len(rerun) == 2 and "__version__" in rerun[0] and "-m pytest" in rerun[1]
    assert lines.index(rerun[0]) > lines.index(next(line for line in lines if "--nbval-lax notebooks" in line))
    words = shlex.split(rerun[1])
    files, select = [w for w in words if w.startswith("tests/")], words[-1]
    assert files == make_variable("PANEL_TESTS").split() and len(files) == 4
    assert words[-2] == "-k" and select == make_variable("PANEL_SELECT")

    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                        *files, "-k", select], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    collected = [line for line in r.stdout.splitlines() if "::" in line]
    for name in files:
        assert any(line.startswith(f"{name}::") for line in collected), f"{name} gives no panel test"
    assert "tests/test_panel.py::test_train_click_trains_in_the_background" in collected
    assert not any("importing" in line for line in collected)


@needs_make
def test_the_ipywidgets_7_check_fails_on_another_version(tmp_path):
    import ipywidgets
    if ipywidgets.__version__ == make_variable("IPYWIDGETS7_VERSION"):
        pytest.skip("this environment's own ipywidgets is the Colab version, so the check cannot fail here")
    lines = recipe_lines("test", "SETUP=", f"VENV={sys.prefix}", f"IPYWIDGETS7={tmp_path}")
    check = next(line for line in lines if "__version__" in line)
    r = subprocess.run(["sh", "-c", check], cwd=ROOT, env=quiet_env(PYTHONPATH=""), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"ipywidgets {ipywidgets.__version__} was imported from {ipywidgets.__file__}, "
                                f"not {make_variable('IPYWIDGETS7_VERSION')} from {tmp_path}")


# ----------------------------------------------------------------------------- make lab, end to end

def as_user(user):
    """The command prefix that runs a command as ``user`` (None: as this process), or a skip."""
    if user is None:
        return []
    if os.geteuid() != 0:
        pytest.skip("only root can run the lab as another user")
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        pytest.skip(f"there is no user {user!r} to run the lab as")
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--"]
    pytest.skip("neither setpriv nor runuser is installed to change user")


def lab_home(user):
    """A fresh home folder, owned by ``user``, for JupyterLab's config, data and runtime folders."""
    home = Path(tempfile.mkdtemp(prefix="nin-lab-"))  # not under pytest's tmp_path, which only its owner can enter
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(home, entry.pw_uid, entry.pw_gid)
    return home


def runs_jupyterlab(prefix, python):
    return subprocess.run([*prefix, "sh", "-c", '"$0" -c "import jupyterlab"', str(python)], cwd=ROOT,
                          capture_output=True, timeout=120).returncode == 0


def environment_for(prefix, home):
    """A VENV for make that the user behind ``prefix`` can run: this environment, or, where its interpreter lies
    where only its owner can reach (a pyenv Python in root's home), a throwaway venv of a system Python of the same
    version reading this environment's packages; None when there is neither."""
    if runs_jupyterlab(prefix, Path(sys.prefix) / "bin" / "python"):
        return Path(sys.prefix)
    system = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/local/bin:/usr/bin")
    bridge = home / "venv"
    if system is None or subprocess.run([*prefix, system, "-m", "venv", "--without-pip", str(bridge)],
                                        capture_output=True, timeout=120).returncode:
        return None
    site_packages = next(bridge.glob("lib/python*/site-packages"))
    (site_packages / "environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return bridge if runs_jupyterlab(prefix, bridge / "bin" / "python") else None


def get(url, timeout=5):
    """(status, body) of a GET on the local server, never through a proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return None, ""


def wait_for_lab(process, url, log, seconds=120):
    """Poll ``url`` until it answers 200; fail with the lab's own output when it exits or never answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if get(url)[0] == 200:
            return
        if process.poll() is not None:
            pytest.fail(f"make lab exited with status {process.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer {url} within {seconds} s:\n{log.read_text()[-3000:]}")


def stop(process):
    """End the process group started for the lab (make and JupyterLab)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@needs_make
@pytest.mark.slow
@pytest.mark.parametrize("user", [None, "nobody"], ids=["as-this-user", "as-nobody"])
def test_make_lab_serves_the_lessons(user):
    prefix = as_user(user)
    home = lab_home(user)
    try:
        venv = environment_for(prefix, home)
        if venv is None:
            pytest.skip(f"{user or 'this user'} cannot run this environment's JupyterLab, nor a system Python "
                        f"{sys.version_info.major}.{sys.version_info.minor} reading its packages")
        port, token = free_port(), "nin-test-token"
        share = Path(sys.prefix) / "share" / "jupyter"  # JupyterLab's built pages, also for a bridge venv
        env = quiet_env(HOME=str(home), JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
                        JUPYTER_RUNTIME_DIR=str(home / "runtime"), IPYTHONDIR=str(home / "ipython"),
                        JUPYTER_PATH=str(share), JUPYTERLAB_DIR=str(share / "lab"))
        lab_args = (f"LAB_ARGS=--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} "
                    f"--ServerApp.port_retries=0 --IdentityProvider.token={token}")
        command = [*prefix, "make", "-s", "lab", "SETUP=", f"VENV={venv}", lab_args]
        shown = subprocess.run([*command, "-n"], cwd=ROOT, env=env, capture_output=True, text=True,
                               timeout=60).stdout
        assert ("--allow-root" in shown) == (user is None and os.geteuid() == 0), shown
        log = home / "lab.log"
        with open(log, "w") as out:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        try:
            server = f"http://127.0.0.1:{port}"
            wait_for_lab(process, f"{server}/api/status?token={token}", log)
            status, body = get(f"{server}/api/contents?token={token}")
            assert status == 200 and "01_one_by_one_convolutions.ipynb" in body  # it serves notebooks/
            assert get(f"{server}/lab?token={token}")[0] == 200
            assert get(f"{server}/api/status")[0] == 403  # and asks for the token
        finally:
            stop(process)
    finally:
        shutil.rmtree(home, ignore_errors=True)
