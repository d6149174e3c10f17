"""Shared fixtures: each overlay rendered once per run."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import k8s  # noqa: E402


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """Every overlay under deploy/k8s/overlays, rendered by `kubectl kustomize`."""
    assert k8s.OVERLAYS, "no overlays found"
    return {o: k8s.render_overlay(o) for o in k8s.OVERLAYS}
