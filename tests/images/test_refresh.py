"""The shipped catalog is regenerated from a master-images checkout, facts and commit."""

from __future__ import annotations

import subprocess

from flame_lab.images import refresh


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_refresh_reads_python_sdk_and_requirements_and_flags_opaque_bases(tmp_path):
    repo = tmp_path / "master-images"
    files = {
        "data/python/base/Dockerfile": "FROM python:3.10\n"
        "RUN pip3 install git+https://github.com/PrivateAIM/python-sdk-patterns.git@0.6.5\n",
        "data/python/ml/Dockerfile": "FROM python:3.11\nRUN pip3 install -r /tmp/requirements.txt"
        "\nRUN pip3 install git+https://github.com/PrivateAIM/python-sdk-patterns.git@0.6.5\n",
        "data/python/ml/requirements.txt": "# models\npandas == 2.2.2\nscikit-learn\n\n",
        "data/python/conda/base/Dockerfile": "FROM continuumio/anaconda3\n"
        "RUN pip3 install git+https://github.com/PrivateAIM/python-sdk-patterns.git@0.6.5\n",
        "data/python/extra/Dockerfile": "FROM python:3.12\nRUN pip install torch==2.7.1\n"
        "RUN pip3 install git+https://github.com/PrivateAIM/python-sdk-patterns.git@0.6.5\n",
    }
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "images")
    data = refresh.refresh(repo)
    images = data["images"]
    assert images["python/base"]["python"] == "3.10" and images["python/base"]["complete"]
    assert images["python/ml"]["requirements"] == ["pandas == 2.2.2", "scikit-learn"]
    assert images["python/ml"]["sdk"] == "0.6.5" and images["python/ml"]["python"] == "3.11"
    assert not images["python/conda/base"]["complete"]  # Anaconda brings its own packages
    assert not images["python/extra"]["complete"]  # a pip line outside requirements.txt
    assert len(data["source"]["commit"]) == 40
    assert data["sdk"]["0.6.5"]["requirements"][0].startswith("flame==")
