"""Choosing the master image at submission: it reaches the hub's analysis record, and a draft
the image cannot run is refused before anything is signed or created."""

from __future__ import annotations

from pathlib import Path

import pytest

import flame_lab as fl
from flame_lab.errors import ImageError
from flame_lab.hubclient import every

MEAN_AGE = Path(fl.__file__).parent / "examples" / "mean_age.py"


@pytest.fixture
def fed(in_sandbox):
    return fl.connect()


def _draft(extra_import: str = "") -> fl.Draft:
    text = extra_import + MEAN_AGE.read_text()
    return fl.Draft.from_files({"analysis.py": text}, entrypoint="analysis.py")


def _analysis_count(fed) -> int:
    return len(every(fed.core.find_analyses))


def test_the_sandbox_hub_offers_the_public_python_images(fed):
    offered = fed.master_images()
    assert {"python/base", "python/ml", "python/use-cases/fedstats"} <= set(offered)


def test_the_chosen_image_reaches_the_hubs_analysis_record(fed):
    run = fed.submit(_draft("import pandas\n"), name="image ml", master_image="python/ml")
    try:
        analysis = fed.core.get_analysis(run.id)
        image = fed.core.get_master_image(analysis.master_image_id)
        assert image.virtual_path == "python/ml"
        assert run.record.master_image == "python/ml"
        assert fl.attach(run.id, fed).record.master_image == "python/ml"
    finally:
        run.cancel()


def test_a_chosen_image_that_lacks_a_module_is_refused_before_submission(fed):
    before = _analysis_count(fed)
    with pytest.raises(ImageError) as caught:
        fed.submit(_draft("import pandas as pd\n"), master_image="python/base")
    assert "python/base" in caught.value.message and "pandas" in caught.value.message
    assert "python/ml" in caught.value.hint
    with pytest.raises(ImageError, match="lacks hypothesis") as caught:
        fed.submit(_draft("import hypothesis\n"))  # in no image: a custom one is the way
    assert "flame-lab image requirements" in caught.value.hint
    assert _analysis_count(fed) == before  # nothing created on the hub


def test_by_default_python_base_and_else_the_first_image_that_runs_the_draft(fed):
    run = fed.submit(_draft(), name="default image")
    run.cancel()
    assert run.record.master_image == "python/base"
    with pytest.warns(UserWarning, match=r"python/base: lacks pandas.*run in python/ml"):
        run = fed.submit(_draft("import pandas as pd\n"), name="needs pandas")
    analysis = fed.core.get_analysis(run.id)
    run.cancel()
    assert run.record.master_image == "python/ml"
    assert fed.core.get_master_image(analysis.master_image_id).virtual_path == "python/ml"


def test_an_image_the_hub_does_not_offer_is_refused_naming_those_it_does(fed):
    before = _analysis_count(fed)
    with pytest.raises(ImageError, match="offers no master image 'python/nope'") as caught:
        fed.submit(_draft(), master_image="python/nope")
    assert "python/base" in caught.value.hint
    with pytest.raises(ImageError, match="package list of master image 'python/tensorflow'"):
        fed.submit(_draft(), master_image="python/tensorflow")
    assert _analysis_count(fed) == before
