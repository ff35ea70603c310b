"""The package's metadata: one version (pyproject.toml), an SPDX license with its file, classifiers, and
every dependency it imports declared; read from a wheel built from this tree."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from email.message import Message

import pytest
from support import ROOT

import tracked


@pytest.fixture(scope="module")
def metadata(tmp_path_factory: pytest.TempPathFactory) -> Message:
    """METADATA of a wheel built from a copy of the tree (no network: the installed setuptools builds it)."""
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "tracked", tree / "tracked", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path_factory.mktemp("wheels")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q", "-w", str(wheels), "."],
        cwd=tree, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deprecated" not in done.stderr.lower(), done.stderr  # setuptools' warning about the license table
    (wheel,) = wheels.glob("tracked-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        licenses = [n for n in archive.namelist() if n.endswith("/LICENSE") and ".dist-info/" in n]
        assert licenses, archive.namelist()
        return email.message_from_bytes(archive.read(name))


def test_the_license_is_an_spdx_expression_with_its_file(metadata: Message) -> None:
    """``license = "MIT"`` (PEP 639) and the LICENSE file travel with the wheel."""
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]


def test_classifiers_and_dependencies(metadata: Message) -> None:
    """Classifiers say what it runs on; numpy, imported by tracked itself, is a declared dependency."""
    classifiers = metadata.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Programming Language :: Python :: 3.1") for c in classifiers)
    requires = [r.split(";")[0].replace(" ", "") for r in metadata.get_all("Requires-Dist") or []]
    assert any(r.startswith("numpy>=") for r in requires), requires


def test_the_version_is_written_once(metadata: Message) -> None:
    """``tracked.__version__`` comes from the package metadata; no version literal in the source."""
    from importlib.metadata import PackageNotFoundError, version

    assert metadata["Version"]
    try:
        assert tracked.__version__ == version("tracked")
    except PackageNotFoundError:  # a source tree never installed
        assert tracked.__version__ == "0+unknown"
    assert "__version__ =" not in (ROOT / "tracked" / "__init__.py").read_text()
