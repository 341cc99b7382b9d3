"""The admin's review: a static risk scan by file and line, and the diff of two versions."""

from __future__ import annotations

from pathlib import Path

import flame_lab as fl
from flame_lab.sandbox.node.review import diff_files, scan

HOSTILE = b"""import socket
import subprocess as sp
from importlib import import_module
import pickle

def analysis_method(data, rows):
    print(rows)
    print("starting")
    out = ""
    for row in rows:
        out += f"{row}"
    text = ",".join(str(r) for r in rows)
    open("/tmp/leak.csv", "w").write(text)
    open("notes.txt", "w").write("ok")
    eval("1 + 1")
    sp.run(["ls"])
    import os
    os.system("id")
    data.to_csv("x.csv")
    return pickle.loads(b"")
"""


def test_every_risk_is_found_with_its_file_and_line():
    found = {(f.line, f.category) for f in scan({"a.py": HOSTILE})}
    assert found >= {
        (1, "network"),
        (2, "process"),
        (3, "dynamic-code"),
        (4, "dynamic-code"),
        (7, "prints-data"),
        (11, "string-building"),
        (12, "string-building"),
        (13, "file-write"),
        (15, "dynamic-code"),
        (18, "process"),
        (19, "string-building"),
    }
    lines = {f.line for f in scan({"a.py": HOSTILE})}
    assert 8 not in lines  # a literal message is not data
    assert 14 not in lines  # a relative file in the work folder is allowed
    assert all(f.path == "a.py" and f.code for f in scan({"a.py": HOSTILE}))


def test_the_shipped_example_has_no_findings():
    example = Path(fl.__file__).parent / "examples" / "mean_age.py"
    assert scan({"mean_age.py": example.read_bytes()}) == []


def test_code_that_does_not_parse_is_a_finding_not_a_crash():
    (finding,) = scan({"bad.py": b"def f(:\n"})
    assert (finding.category, finding.line) == ("syntax", 1)


def test_the_diff_names_added_removed_and_changed_files():
    old = {"a.py": b"x = 1\n", "gone.py": b"", "same.py": b"s\n"}
    new = {"a.py": b"x = 2\n", "new.py": b"import socket\n", "same.py": b"s\n"}
    changes = {c.path: c for c in diff_files(old, new)}
    assert {p: c.status for p, c in changes.items()} == {
        "a.py": "changed",
        "gone.py": "removed",
        "new.py": "added",
        "same.py": "same",
    }
    assert "-x = 1" in changes["a.py"].diff and "+x = 2" in changes["a.py"].diff
    assert "+import socket" in changes["new.py"].diff
