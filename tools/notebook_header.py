"""Write (or check) the launch header of every lesson: Colab/Binder badges and a Colab-only setup cell.

The repository's address lives in one place, ``[project.urls] Repository`` in pyproject.toml; the
badges, the Colab ``pip install`` and the README's launch table are all built from it.

    python tools/notebook_header.py                  # update notebooks/*.ipynb and the README table
    python tools/notebook_header.py notebooks/03_x.ipynb   # only the notebooks named (and the README)
    python tools/notebook_header.py --check          # exit 1 and list what is missing or stale

Header cells carry the tag ``nin-header``: an existing header is replaced where it stands, otherwise
the header goes right after the title cell. The README table sits between ``README_START`` and
``README_END`` markers. Only files whose content changes are written.
"""
import argparse
import copy
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
NOTEBOOK_DIR = ROOT / "notebooks"
README = ROOT / "README.md"
BRANCH = "main"
TAG = "nin-header"
BADGES_ID = "nin-header-badges"
SETUP_ID = "nin-header-colab"
README_START = "<!-- nin-launch:start (written by tools/notebook_header.py) -->"
README_END = "<!-- nin-launch:end -->"
DISTRIBUTION = "nin-notebooks"  # [project] name in pyproject.toml: what the Colab cell reports the version of
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"


# ----------------------------------------------------------------------------- the one address

def _parse_urls_fallback(text):
    """Read the ``[project.urls]`` table of a pyproject.toml without tomllib (Python 3.9/3.10)."""
    urls, inside = {}, False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            inside = line.split("#")[0].strip() == "[project.urls]"
            continue
        match = re.match(r"""^(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_.-]+))\s*=\s*(?:"([^"]*)"|'([^']*)')""", line)
        if inside and match:
            key = match.group(1) or match.group(2) or match.group(3)
            urls[key] = match.group(4) if match.group(4) is not None else match.group(5)
    return urls


def _project_urls(text):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            return _parse_urls_fallback(text)
    return tomllib.loads(text).get("project", {}).get("urls", {})


def repository_url(pyproject=PYPROJECT):
    """The GitHub address in ``[project.urls] Repository`` of pyproject.toml, without a trailing slash or .git."""
    urls = _project_urls(Path(pyproject).read_text(encoding="utf-8"))
    url = urls.get("Repository")
    if not url:
        raise ValueError(f"{pyproject} has no [project.urls] Repository entry; add the GitHub address there.")
    url = url.strip().rstrip("/")
    url = url[:-4] if url.endswith(".git") else url
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"repository address {url!r} is not of the form https://github.com/OWNER/REPO; "
                         "Colab and Binder only open GitHub repositories.")
    return url


def owner_repo(url):
    """'OWNER/REPO' from a GitHub address."""
    return url.split("github.com/", 1)[1]


def colab_url(url, notebook):
    """The Colab address that opens ``notebooks/<notebook>`` of the repository."""
    return f"https://colab.research.google.com/github/{owner_repo(url)}/blob/{BRANCH}/notebooks/{notebook}"


def binder_url(url, notebook=None):
    """The Binder address that opens JupyterLab at ``notebooks/<notebook>`` (or the lessons folder)."""
    path = f"notebooks/{notebook}" if notebook else "notebooks"
    return f"https://mybinder.org/v2/gh/{owner_repo(url)}/{BRANCH}?urlpath=lab/tree/{path}"


def badges(url, notebook):
    """Markdown for the two badges of one notebook."""
    return (f"[![Open In Colab]({COLAB_BADGE})]({colab_url(url, notebook)}) "
            f"[![Launch Binder]({BINDER_BADGE})]({binder_url(url, notebook)})")


# ----------------------------------------------------------------------------- notebook header

def setup_source(url):
    """The Colab setup cell: installs nin_lib from the repository, says what it installed, turns on widgets."""
    return "\n".join([
        "# Colab setup: on Google Colab, install nin_lib from the repository and turn on widgets.",
        "# Everywhere else (JupyterLab, Binder, your machine) this cell does nothing.",
        "import sys",
        "if 'google.colab' in sys.modules:",
        "    import importlib, importlib.metadata, subprocess",
        f"    source = 'git+{url}.git'",
        "    # --no-deps: Colab already has torch, torchvision, numpy, matplotlib, tqdm and ipywidgets",
        "    pip = subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', source],",
        "                         capture_output=True, text=True)",
        "    importlib.invalidate_caches()",
        "    if pip.returncode == 0:",
        f"        version = importlib.metadata.version({DISTRIBUTION!r})",
        "        print(f'nin_lib {version} installed from {source}')",
        "    else:",
        "        reason = (pip.stderr.strip() or pip.stdout.strip() or 'no message from pip').splitlines()[-1]",
        "        print(f'nin_lib was not installed from {source} ({reason}): check that this runtime is online, '",
        "              'or, in a fork, set [project.urls] Repository in pyproject.toml to the fork, '",
        "              'run python tools/notebook_header.py and push.', file=sys.stderr)",
        "    from google.colab import output",
        "    output.enable_custom_widget_manager()",
    ])


def header_cells(url, notebook, with_ids=True):
    """The two tagged header cells (badges markdown, Colab setup code) for ``notebook`` (a file name)."""
    import nbformat
    extra = {"id": BADGES_ID} if with_ids else {}
    badge_cell = nbformat.v4.new_markdown_cell(badges(url, notebook), metadata={"tags": [TAG]}, **extra)
    extra = {"id": SETUP_ID} if with_ids else {}
    setup_cell = nbformat.v4.new_code_cell(setup_source(url), metadata={"tags": [TAG]}, **extra)
    if not with_ids:
        badge_cell.pop("id", None)
        setup_cell.pop("id", None)
    return [badge_cell, setup_cell]


def _is_header(cell):
    return TAG in cell.get("metadata", {}).get("tags", [])


def _is_title(cell):
    return cell.get("cell_type") == "markdown" and "".join(cell.get("source", "")).lstrip().startswith("# ")


def _key(cell):
    return (cell.get("cell_type"), "".join(cell.get("source", "")), tuple(cell.get("metadata", {}).get("tags", [])))


def apply_header(nb, url, notebook):
    """Return a copy of the notebook ``nb`` with its header in place (replaced where it stood, else after the title)."""
    nb = copy.deepcopy(nb)
    with_ids = (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5)
    new = header_cells(url, notebook, with_ids=with_ids)
    cells = nb["cells"]
    old = [i for i, cell in enumerate(cells) if _is_header(cell)]
    if old:
        at = old[0]
        previous = {cell["cell_type"]: cell for cell in (cells[i] for i in old)}
        for cell in new:  # keep a run's execution count so an executed notebook stays in order
            if cell["cell_type"] == "code" and "code" in previous:
                cell["execution_count"] = previous["code"].get("execution_count")
                cell["outputs"] = previous["code"].get("outputs", [])
        cells = [cell for cell in cells if not _is_header(cell)]
    else:
        at = 1 if cells and _is_title(cells[0]) else 0
    nb["cells"] = cells[:at] + new + cells[at:]
    return nb


def header_problem(nb, url, notebook):
    """None when the notebook's header is current, else one sentence saying what is wrong."""
    headers = [cell for cell in nb["cells"] if _is_header(cell)]
    if not headers:
        return "has no launch header"
    if [_key(c) for c in apply_header(nb, url, notebook)["cells"]] != [_key(c) for c in nb["cells"]]:
        return "has a stale launch header (badges, setup cell or their place differ)"
    return None


def notebooks(paths=None):
    """The notebooks to treat: the paths given, or every notebooks/*.ipynb."""
    if paths:
        return [Path(p) for p in paths]
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def update_notebook(path, url):
    """Write the header into the notebook at ``path``; True when the file changed."""
    import nbformat
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if header_problem(nb, url, path.name) is None:
        return False
    nbformat.write(apply_header(nb, url, path.name), path)
    return True


def check_notebook(path, url):
    """None when the notebook at ``path`` has a current header, else the problem."""
    import nbformat
    path = Path(path)
    return header_problem(nbformat.read(path, as_version=4), url, path.name)


# ----------------------------------------------------------------------------- README

def notebook_title(path):
    """The title line of a lesson (its first markdown heading), without the leading '# '."""
    import nbformat
    for cell in nbformat.read(path, as_version=4)["cells"]:
        if _is_title(cell):
            return "".join(cell["source"]).lstrip()[2:].splitlines()[0].strip()
    return Path(path).stem


def readme_block(url, paths):
    """The README's launch section body: badges for the whole collection, then one row per lesson."""
    lines = [README_START,
             f"[![Launch Binder]({BINDER_BADGE})]({binder_url(url)}) "
             f"[![Open In Colab]({COLAB_BADGE})](https://colab.research.google.com/github/{owner_repo(url)})",
             ""]
    if paths:
        lines += ["| lesson | Colab | Binder |", "| --- | --- | --- |"]
        for path in paths:
            name = Path(path).name
            lines.append(f"| [{notebook_title(path)}](notebooks/{name}) "
                         f"| [![Open In Colab]({COLAB_BADGE})]({colab_url(url, name)}) "
                         f"| [![Launch Binder]({BINDER_BADGE})]({binder_url(url, name)}) |")
    lines.append(README_END)
    return "\n".join(lines)


def readme_text(text, url, paths):
    """README text with the launch block replaced; ValueError when its markers are missing."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no launch block; put the lines {README_START!r} and "
                         f"{README_END!r} where the badges should go.")
    return text[:start] + readme_block(url, paths) + text[end + len(README_END):]


def readme_problem(readme, url, paths):
    """None when the README's launch block is current, else one sentence."""
    text = Path(readme).read_text(encoding="utf-8")
    try:
        return None if readme_text(text, url, paths) == text else "has a stale launch block"
    except ValueError as error:
        return str(error)


# ----------------------------------------------------------------------------- command line

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to treat (default: notebooks/*.ipynb)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 listing stale files")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    args = parser.parse_args(argv)
    try:
        url = repository_url()
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    paths = notebooks(args.notebooks)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"no such notebook: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    do_readme = not args.no_readme and README.is_file()  # its table lists every lesson, whichever were named
    lessons = notebooks()
    if args.check:
        problems = [f"{p}: {msg}" for p in paths if (msg := check_notebook(p, url))]
        if do_readme and (msg := readme_problem(README, url, lessons)):
            problems.append(f"{README.name}: {msg}")
        for line in problems:
            print(line)
        if problems:
            print("run: python tools/notebook_header.py", file=sys.stderr)
        return 1 if problems else 0
    for path in paths:
        if update_notebook(path, url):
            print(f"updated {path}")
    if do_readme:
        text = README.read_text(encoding="utf-8")
        try:
            new = readme_text(text, url, lessons)
        except ValueError as error:
            print(error, file=sys.stderr)
            return 1
        if new != text:
            README.write_text(new, encoding="utf-8")
            print(f"updated {README.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
