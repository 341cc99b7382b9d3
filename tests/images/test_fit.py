"""A draft weighed against FLAME master images: flagged where a package is missing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from flame_lab.draft import Draft
from flame_lab.errors import DraftError, ImageError
from flame_lab.images import catalog as catalogs
from flame_lab.images.fit import report, requirements_txt

MODEL = "from flame.star import StarModel\nStarModel(analyzer=None, aggregator=None)\n"


def notebook(*cells: str) -> dict:
    return {
        "cells": [{"cell_type": "code", "source": text, "metadata": {}} for text in cells],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@pytest.fixture(autouse=True)
def _no_user_images(tmp_path, monkeypatch):
    monkeypatch.setenv("FLAME_LAB_CONFIG_DIR", str(tmp_path / "config"))


def pandas_draft() -> Draft:
    return Draft.from_notebook(
        notebook("import pandas as pd\nprint(1)", "%%flame\nimport pandas as pd\n" + MODEL)
    )


def test_a_notebook_importing_pandas_is_flagged_against_python_base():
    draft = pandas_draft()
    with pytest.raises(ImageError) as caught:
        draft.check(image="python/base")
    message = caught.value.message
    assert "python/base" in message and "pandas" in message and "cell 2, line 2" in message
    assert "python/ml" in caught.value.hint  # it says which image has it


def test_the_same_notebook_is_accepted_for_an_image_that_has_pandas():
    result = pandas_draft().check(image="python/ml")
    assert result.chosen is not None and result.chosen.ok
    assert result.chosen.image.path == "python/ml"
    assert "python/base" not in result.fitting and "python/ml" in result.fitting
    assert [n.module for n in result.environment.needs] == ["pandas"]
    assert result.environment.needs[0].distribution == "pandas"


def test_a_standard_library_draft_fits_python_base_first():
    draft = Draft.from_files({"analysis.py": "import json, statistics\n" + MODEL})
    result = draft.check()
    assert result.fitting[0] == "python/base"
    assert result.chosen is None and not result.environment.needs


def test_the_list_of_fitting_images_says_how_many_it_leaves_out_and_never_cuts():
    draft = Draft.from_files({"analysis.py": "import json\n" + MODEL})
    result = draft.check()
    assert len(result.fitting) > 6  # a standard-library draft fits most images
    line = result.summary().splitlines()[-1]
    assert "..." not in line
    assert line == (
        "known images that fit: "
        + ", ".join(result.fitting[:6])
        + f" (+{len(result.fitting) - 6} more)"
    )
    whole = result.summary(shown=None).splitlines()[-1]
    assert whole == "known images that fit: " + ", ".join(result.fitting)
    assert "more)" not in whole
    six = dataclasses.replace(result, fitting=result.fitting[:6])
    assert six.summary().endswith(", ".join(result.fitting[:6]))
    assert dataclasses.replace(result, fitting=()).summary().endswith("fit: none")


def test_import_names_that_differ_from_the_distribution_resolve():
    draft = Draft.from_files({"analysis.py": "import numpy\nimport yaml\n" + MODEL})
    needs = {n.module: n.distribution for n in draft.check().environment.needs}
    assert needs == {"numpy": "numpy", "yaml": "pyyaml"}
    # pyyaml is in python/use-cases/ood's list, numpy too (as a pin)
    with pytest.raises(ImageError, match="lacks numpy"):
        draft.check(image="python/base")


def test_a_dependency_of_a_listed_package_counts():
    # python/ml lists pandas, not numpy; pandas brings numpy along
    draft = Draft.from_files({"analysis.py": "import numpy\n" + MODEL})
    assert draft.check(image="python/ml").chosen.ok


def test_an_unresolvable_import_is_a_draft_error_naming_the_line():
    draft = Draft.from_files({"analysis.py": "import no_such_module_xyz\n" + MODEL})
    with pytest.raises(DraftError, match=r"line 1: module 'no_such_module_xyz'"):
        draft.check()


def test_an_unknown_image_name_is_refused_with_what_to_do():
    with pytest.raises(ImageError, match="does not know the master image 'python/nope'") as err:
        pandas_draft().check(image="python/nope")
    assert "flame-lab image list" in err.value.hint


def test_an_image_whose_package_list_is_unknown_is_refused():
    with pytest.raises(ImageError, match="package list of master image 'python/tensorflow'"):
        pandas_draft().check(image="python/tensorflow")


def test_the_researchers_own_list_makes_an_unknown_image_usable(tmp_path):
    folder = tmp_path / "config" / "images" / "python" / "tensorflow"
    folder.mkdir(parents=True)
    (folder / "requirements.txt").write_text("# from pip freeze\npandas==2.2.2\n")
    assert pandas_draft().check(image="python/tensorflow").chosen.ok
    custom = tmp_path / "config" / "images" / "hospital" / "stats"
    custom.mkdir(parents=True)
    (custom / "requirements.txt").write_text("scipy\n")
    with pytest.raises(ImageError, match="image hospital/stats: lacks pandas"):
        pandas_draft().check(image="hospital/stats")


def test_the_images_python_is_checked_for_syntax_and_standard_modules():
    draft = Draft.from_files({"analysis.py": "import tomllib\n" + MODEL})
    with pytest.raises(ImageError, match=r"Python 3\.10 has no standard module 'tomllib'"):
        draft.check(image="python/base")
    assert draft.check(image="python/use-cases/fedstats").chosen.ok  # Python 3.13
    newer = "try:\n    pass\nexcept* ValueError:\n    pass\n" + MODEL
    with pytest.raises(ImageError, match=r"not Python 3\.10 syntax"):
        Draft.from_files({"analysis.py": newer}).check(image="python/base")
    removed = Draft.from_files({"analysis.py": "import imghdr\n" + MODEL})
    with pytest.raises(ImageError, match=r"3\.13 has no standard module 'imghdr'"):
        removed.check(image="python/use-cases/fedstats")


def test_a_version_difference_is_reported_but_not_refused():
    draft = Draft.from_files({"analysis.py": "import pandas\n" + MODEL})
    fit = draft.check(image="python/synth").chosen  # pins pandas == 2.2.2
    assert fit.ok
    assert [pin for _, pin in fit.differs] == ["==2.2.2"]
    assert "versions differ" in fit.summary()


def test_requirements_file_for_a_custom_image_pins_what_the_base_lacks():
    import pandas

    text = requirements_txt(pandas_draft())
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert lines == [f"pandas=={pandas.__version__}"]
    assert "python/base" in text and catalogs.load().source["commit"][:12] in text


def test_the_shipped_catalog_names_its_source_and_commit():
    data = json.loads(catalogs.DATA_FILE.read_text())
    assert data["source"]["repository"] == "https://github.com/PrivateAIM/master-images"
    assert len(data["source"]["commit"]) == 40
    base = catalogs.load().get("python/base")
    assert base.python == "3.10" and base.complete
    assert {r.name for r in base.requirements} >= {"flame", "flamesdk", "opendp"}


def test_report_is_json_ready():
    result = report(pandas_draft(), "python/ml")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["image"] == "python/ml" and data["fits"] is True and data["missing"] == []
