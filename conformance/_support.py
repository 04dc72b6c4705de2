"""Helpers shared by the conformance tests: turning catalog cases into pytest
parameters and asserting a case's outcome."""
import pytest

from refsnn.conformance import runner


class SpikingJellyDefect(AssertionError):
    """Raised when a case shows its listed SpikingJelly defect; the case's strict
    `xfail(raises=SpikingJellyDefect)` turns it into an expected failure."""


def case_param(case, available_backends=None):
    """`pytest.param(case)` with the case's id, an xfail mark for a known
    SpikingJelly defect, and a skip mark for an unavailable refsnn backend."""
    marks = []
    if case.backend is not None and available_backends is not None \
            and case.backend not in available_backends:
        marks.append(pytest.mark.skip(reason=f"refsnn backend {case.backend!r} not "
                                              f"available here"))
    if case.defect is not None:
        marks.append(pytest.mark.xfail(strict=True, raises=SpikingJellyDefect,
                                       reason=f"SpikingJelly defect {case.defect.key}: "
                                              f"{case.defect.reason}"))
    return pytest.param(case, id=case.id, marks=marks)


def check_case(case, data=None):
    """Run `case` and fail with the runner's diagnosis unless it conforms;
    a known defect that shows raises `SpikingJellyDefect`."""
    result = runner.run_case(case, data)
    defect = case.defect
    if defect is not None and result.outcome == defect.expect:
        raise SpikingJellyDefect(result.message)
    assert result.outcome == "pass", f"{result.outcome}: {result.message}"
    return result
