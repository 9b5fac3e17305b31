"""binder/ stays in step with requirements.txt and pyproject.toml (repo2docker cannot run in the tests)."""
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# in requirements.txt for the tests only; a learner's Binder image does not need them
TEST_TOOLS = {"nbformat", "nbclient", "nbval", "pytest", "playwright"}


def requirements(path):
    """{normalised package name: specifier} and the option lines of a requirements file."""
    packages, options = {}, []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            options.append(line)
            continue
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", line)
        packages[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(3).replace(" ", "")
    return packages, options


def pyproject_dependencies():
    """Package names in pyproject.toml's dependencies and its 'lessons' extra."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    names = set()
    for block in re.findall(r"^(?:dependencies|lessons)\s*=\s*\[(.*?)\]", text, re.MULTILINE | re.DOTALL):
        for item in re.findall(r'"([^"]+)"', block):
            names.add(re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.\-]+", item).group(0)).lower())
    return names


def test_binder_uses_pytorch_cpu_wheels():
    _, options = requirements(BINDER / "requirements.txt")
    assert any(re.fullmatch(rf"--(extra-)?index-url[= ]\s*{re.escape(CPU_INDEX)}/?", o) for o in options), options


def test_binder_admits_the_same_packages_as_requirements():
    binder, _ = requirements(BINDER / "requirements.txt")
    wanted, _ = requirements(ROOT / "requirements.txt")
    lessons = {name: spec for name, spec in wanted.items() if name not in TEST_TOOLS}
    assert binder == lessons


def test_binder_has_everything_nin_lib_needs():
    # postBuild installs nin_lib with --no-deps, so its dependencies must come from binder/requirements.txt
    binder, _ = requirements(BINDER / "requirements.txt")
    missing = pyproject_dependencies() - set(binder)
    assert {"torch", "torchvision"} <= pyproject_dependencies()
    assert missing == set()


def test_post_build_installs_nin_lib_and_opens_the_lessons():
    post_build = BINDER / "postBuild"
    text = post_build.read_text(encoding="utf-8")
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    assert text.startswith("#!") and "set -e" in text
    assert re.search(r"pip install .*-e \.", text)
    assert "/lab/tree/notebooks" in text


def test_binder_python_matches_pyproject():
    version = re.fullmatch(r"python-(\d+)\.(\d+)\s*", (BINDER / "runtime.txt").read_text()).groups()
    lowest = re.search(r'requires-python\s*=\s*">=(\d+)\.(\d+)"', (ROOT / "pyproject.toml").read_text()).groups()
    assert tuple(map(int, version)) >= tuple(map(int, lowest))
