"""`litesafe version` and `litesafe --version`: the version is the one in
CMakeLists.txt's project(litesafe VERSION x.y.z), the single source of truth,
printed in the established formats."""
import json
import os
import re
import subprocess

from conftest import BIN, ROOT


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        m = re.search(r"project\(litesafe\s+VERSION\s+(\d+\.\d+\.\d+)", f.read())
    assert m, "no project(litesafe VERSION x.y.z) in CMakeLists.txt"
    return m.group(1)


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True)


def test_version_text():
    r = run("version")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    # The SQLite version is the library's that the binary is linked with; the
    # one Python links may differ, so only its shape is checked.
    m = re.fullmatch(r"litesafe (\S+) \(SQLite (\d+\.\d+\.\d+)\)\n", r.stdout)
    assert m, r.stdout
    assert m.group(1) == project_version()


def test_version_json():
    r = run("--json", "version")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout.strip().splitlines()[-1])
    assert j["command"] == "version"
    assert j["version"] == project_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", j["sqlite_version"])


def test_global_version_option():
    r = run("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "litesafe %s\n" % project_version()
