"""`flame-lab image list|check|requirements` from a terminal."""

from __future__ import annotations

import json

import pandas

from flame_lab.cli import main

ANALYSIS = (
    "import pandas as pd\nfrom flame.star import StarModel\n"
    "StarModel(analyzer=None, aggregator=None)\n"
)


def test_image_list_names_the_source_and_flags_unknown_lists(capsys):
    assert main(["image", "list"]) == 0
    out = capsys.readouterr().out
    assert "PrivateAIM/master-images at e1c2554bab59" in out
    assert "python/ml" in out and "package list unknown" in out
    assert main(["image", "list", "--json"]) == 0
    images = {i["path"]: i for i in json.loads(capsys.readouterr().out)["images"]}
    assert images["python/base"]["python"] == "3.10"
    assert not images["python/tensorflow"]["complete"]


def test_image_requirements_writes_what_the_base_lacks(tmp_path, capsys):
    path = tmp_path / "analysis.py"
    path.write_text(ANALYSIS)
    out = tmp_path / "requirements.txt"
    assert main(["image", "requirements", str(path), "--out", str(out)]) == 0
    lines = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert lines == [f"pandas=={pandas.__version__}"]
    assert main(["image", "requirements", str(path), "--base", "python/ml"]) == 0
    assert "nothing beyond python/ml" in capsys.readouterr().out


def test_image_check_refuses_an_image_that_lacks_a_module(tmp_path, capsys):
    path = tmp_path / "analysis.py"
    path.write_text(ANALYSIS)
    assert main(["image", "check", str(path), "--image", "python/base"]) == 1
    err = capsys.readouterr().err
    assert "python/base" in err and "lacks pandas" in err and "hint: Choose an image" in err
    assert main(["image", "check", str(path), "--image", "python/ml"]) == 0
    assert "fits: python/ml has everything" in capsys.readouterr().out


def test_image_check_lists_every_image_that_fits(tmp_path, capsys):
    path = tmp_path / "analysis.py"
    path.write_text("import json\n" + ANALYSIS.split("\n", 1)[1])
    assert main(["image", "check", str(path)]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    fitting = line.removeprefix("known images that fit: ").split(", ")
    assert len(fitting) > 6 and "python/base" in fitting and "r/ml" not in fitting
    assert "..." not in line and "more)" not in line
