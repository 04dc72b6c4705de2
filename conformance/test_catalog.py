"""Every case of the conformance catalog (`refsnn/conformance/catalog.py`):
SpikingJelly / PyTorch and refsnn on the same inputs, weights and states.

Spikes and membrane potentials must be bit-identical (EIF and transcendental
primitives within the record's ulps), gradients within the record's relative
tolerance. Cases exposing a known SpikingJelly defect are strict xfails, so a
fix upstream shows up as XPASS and fails the run until the catalog is updated.
"""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("spikingjelly")

from refsnn.conformance import catalog, drivers  # noqa: E402

from _support import case_param, check_case  # noqa: E402

AVAILABLE = drivers.available_backends()
CASES = catalog.all_cases()


@pytest.mark.parametrize("case", [case_param(c, AVAILABLE) for c in CASES])
def test_case_conforms(case):
    check_case(case)


def test_catalog_is_large_enough():
    """The issue asks for at least 500 generated cases in total."""
    assert len(CASES) >= 500, len(CASES)
