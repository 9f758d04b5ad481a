"""Installable package for the anime recommender; dependencies come from requirements.txt."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def requirements(name: str) -> list[str]:
    """The requirement lines of a pip requirements file, following its ``-r other.txt`` includes."""
    found = []
    for line in (HERE / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("-r "):
            found += requirements(line[3:].strip())
        elif line and not line.startswith("#"):
            found.append(line)
    return found


setup(
    name="anime-recommender",
    version="0.1.0",
    description="Hybrid anime recommender: Keras NCF embeddings trained on MyAnimeList ratings, served by Flask",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["src", "src.*", "config", "utils", "pipeline"]),
    py_modules=["application"],
    install_requires=requirements("requirements.txt"),
    entry_points={"console_scripts": [
        "anime-train = pipeline.training_pipeline:run",
        "anime-evaluate = pipeline.evaluation_pipeline:run",
        "anime-tune = pipeline.tuning_pipeline:run",
        "anime-recommend = pipeline.prediction_pipeline:run",
        "anime-models = pipeline.models_pipeline:run",
    ]},
    extras_require={
        "gcs": ["google-cloud-storage>=2.10,<4", "dvc-gs>=3,<4"],  # a GCS bucket as data source and DVC remote
        "dev": [r for r in requirements("requirements-dev.txt") if r not in requirements("requirements.txt")],
    },
)
