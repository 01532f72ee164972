"""docs/migrating-from-litestream.md, held to what it says.

The page shows each Litestream configuration next to the litesafe one in an
HTML table of two <pre> blocks. The 0.3 file must be the same on both sides
and read by both tools; the 0.5 file's litesafe side must be read, and the
0.5 side itself refused (exit 2) naming exactly the keys the page says to
drop.
"""
import html
import os
import re
import subprocess

from conftest import ROOT, run
from repl_helpers import LITESTREAM

DOC = os.path.join(ROOT, "docs", "migrating-from-litestream.md")


def side_by_side():
    """[(left, right)] for each two-column table of the page."""
    text = open(DOC).read()
    tables = re.findall(r"<table>(.*?)</table>", text, re.S)
    pairs = []
    for t in tables:
        pres = [html.unescape(p).lstrip("\n") for p in re.findall(r"<pre>(.*?)</pre>", t, re.S)]
        if len(pres) == 2:
            pairs.append(tuple(pres))
    assert len(pairs) == 2, "expected the 0.3 and the 0.5 table, found %d" % len(pairs)
    return pairs


def write_cfg(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_litestream03_config_unchanged_and_read_by_both(tmp_path):
    (left, right), _ = side_by_side()
    assert left == right
    cfg = write_cfg(tmp_path, "03.yml", right)
    r = run("databases", "-config", cfg, "--json")
    assert r.rc == 0, r
    assert [d["path"] for d in r.json["databases"]] == ["/srv/app/app.db"]
    p = subprocess.run([LITESTREAM, "databases", "-config", cfg], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and "/srv/app/app.db" in p.stdout, (p.stdout, p.stderr)


def test_litestream05_config_needs_only_the_named_change(tmp_path):
    _, (left, right) = side_by_side()
    ours = run("databases", "-config", write_cfg(tmp_path, "ls.yml", right), "--json")
    assert ours.rc == 0, ours
    assert [d["path"] for d in ours.json["databases"]] == ["/srv/app/app.db"]
    theirs = run("databases", "-config", write_cfg(tmp_path, "05.yml", left))
    assert theirs.rc == 2, theirs
    assert "levels" in theirs.err, theirs.err
    # the litesafe side is the 0.5 side minus the keys the page names
    removed = [l for l in left.splitlines() if l not in right.splitlines()]
    assert removed and removed[0] == "levels:", removed
    doc = open(DOC).read()
    assert "The only change: `levels` goes" in doc
