"""Fixtures of the released-model tests."""

import pytest
from release_helpers import tiny_t5_and_vae


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """(tiny T5 encoder dir, tiny AutoencoderKL dir), saved in the hub layouts."""
    return tiny_t5_and_vae(tmp_path_factory.mktemp("hub_src"))
