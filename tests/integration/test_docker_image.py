"""The Docker image holds what the package needs. No Docker engine (nor base image) is reachable
here, so this builds what the image would hold without one: exactly the files the Dockerfile
COPYs, in a scratch folder, installed the way the Dockerfile installs them (``pip install -e``),
then every process the image runs (its CMD and docker-compose.yml's lookups commands) asked for
``--help`` and every plugin entry point loaded. The image's plugin contract package once went missing
(the Dockerfile predated it) and every process died at import."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from setuptools import find_packages

REPO = Path(__file__).resolve().parents[2]
# Files pip needs besides the packages: the build config and the readme it names.
BUILD_FILES = {"pyproject.toml", "README.md"}


def dockerfile_copies(text: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY line, relative to the build context and WORKDIR."""
    copies = []
    for line in text.splitlines():
        if line.startswith("COPY "):
            *sources, destination = line.split()[1:]
            assert not any(s.startswith("--") for s in sources), f"COPY flags are not modelled here: {line}"
            copies.append((sources, destination))
    return copies


def packages_pyproject_finds() -> set[str]:
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    return {name.split(".")[0] for name in find_packages(str(REPO), include=find["include"])}


def image_commands() -> list[tuple[str, ...]]:
    """Every lookups command the image runs: compose's services and the Dockerfile's CMD."""
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    commands = [s["command"] for s in services.values() if s.get("command", [None])[0] == "lookups"]
    assert '\nCMD ["lookups", "--help"]' in (REPO / "Dockerfile").read_text()
    return [("lookups",), *({tuple(command[:2]): None for command in commands})]


def test_the_dockerfile_copies_exactly_the_packages_pyproject_finds():
    copied = {source.rstrip("/") for sources, _ in dockerfile_copies((REPO / "Dockerfile").read_text())
              for source in sources}
    assert copied - BUILD_FILES == packages_pyproject_finds()
    assert BUILD_FILES <= copied


def test_dockerfile_copies_reads_sources_and_destination():
    assert dockerfile_copies("FROM x\nCOPY a.toml b.md ./\nCOPY api api\n") == [
        (["a.toml", "b.md"], "./"), (["api"], "api")]


def copy_into(app: Path, sources: list[str], destination: str) -> None:
    """Docker's COPY: into a folder when the destination ends in '/', else onto that path."""
    for source in sources:
        target = app / destination / source if destination.endswith("/") else app / destination
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / source, target)


@pytest.fixture(scope="module")
def image_python(tmp_path_factory) -> Path:
    """A scratch venv with lookups installed editable from only the copied files; its
    dependencies come from this environment's site-packages (a .pth), so nothing downloads.
    ``--ignore-installed``: pip installs into the scratch venv and never touches the checkout's."""
    root = tmp_path_factory.mktemp("image")
    app = root / "app"
    for sources, destination in dockerfile_copies((REPO / "Dockerfile").read_text()):
        copy_into(app, sources, destination)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    # Innermost environment last: a venv layered over a shared one (as worktrees are) has an
    # older setuptools of its own, while the shared one holds the dependencies and build tools.
    outer = reversed([p for p in sys.path if p.endswith("site-packages")])
    (site / "zz-dependencies.pth").write_text("\n".join(outer) + "\n")
    python = venv / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--ignore-installed", "-e", str(app)],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return python


@pytest.mark.parametrize("command", image_commands(), ids=" ".join)
def test_every_process_the_image_runs_starts(image_python, command):
    lookups = image_python.parent / "lookups"
    done = subprocess.run([str(lookups), *command[1:], "--help"], cwd=image_python.parents[2],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout


def test_every_plugin_entry_point_loads_from_the_image(image_python):
    script = ("from importlib.metadata import entry_points\n"
              "for ep in entry_points(group='lookups'):\n"
              "    module = ep.load()\n"
              "    assert '/app/' in module.__file__, module.__file__\n"
              "    print(ep.name)\n")
    done = subprocess.run([str(image_python), "-c", script], cwd=image_python.parents[2],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "scorer_zero_shot" in done.stdout.split()
