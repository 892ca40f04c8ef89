"""A checkpoint trained long enough to be confident, shared by the deploy tests."""
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """mobilenetv3 + fusion head, 128 px, width 64, 800 iterations on the embedded data (confident enough for int8 parity)."""
    out = tmp_path_factory.mktemp("trained")
    proc = run_cli("edgeseg.train", "--backbone", "mobilenetv3", "--iters", "800", "--batch-size", "8",
                   "--img-size", "128", "--width", "64", "--pretrained", "none", "--lr", "2e-3",
                   "--val-interval", "800", "--val-limit", "16", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out
