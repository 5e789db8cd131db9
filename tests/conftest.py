# Before anything imports TensorFlow: quiet logs and pinned oneDNN so numbers do not drift between runs.
import model_utils  # noqa: F401  (pins TensorFlow's environment)

import re  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURE_PKL = SHARED / "fixtures" / "poria_py2_small.pkl"
TRANSCRIPTS_CSV = SHARED / "data" / "iemocap_transcripts.csv"
# TensorFlow / absl C++ log lines: "2025-09-17 14:44:05.157831: I external/…", "I0000 00:00:1796055762.33  20155 …]",
# and the start-up messages whatever their prefix
TF_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
                    r"|external/local_xla|oneDNN custom operations|absl::InitializeLog|cuda drivers", re.M)


@pytest.fixture
def fixture_pkl() -> Path:
    if not FIXTURE_PKL.is_file():
        pytest.skip(f"needs ../shared beside the repository ({FIXTURE_PKL} is absent)")
    return FIXTURE_PKL


@pytest.fixture
def transcripts_csv() -> Path:
    if not TRANSCRIPTS_CSV.is_file():
        pytest.skip(f"needs ../shared beside the repository ({TRANSCRIPTS_CSV} is absent)")
    return TRANSCRIPTS_CSV


@pytest.fixture(scope="session")
def small_corpus():
    """A small synthetic corpus (8 train, 3 test dialogues), fast to build."""
    from data_utils.synthetic import SyntheticConfig, generate_corpus

    return generate_corpus(seed=3, config=SyntheticConfig(n_train=8, n_test=3, mean_length=12, sd_length=4,
                                                           min_length=4, max_length=20))


def import_archive(name: str):
    """A module of ``archive/`` (the archive notebook's helpers, which live beside it, not in the packages), imported
    as the notebook imports it."""
    import importlib
    import sys

    folder = str(REPO / "archive")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)
