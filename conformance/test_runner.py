"""The runner's comparisons and diagnostics (no torch needed)."""
import numpy as np

from refsnn.conformance import catalog, compare, runner


def _case():
    return catalog.expand(catalog.record("ab.IFNode"))[0]


def test_spike_flip_reports_first_divergence_and_margin():
    spikes = np.zeros((4, 2, 3), np.float32)
    flipped = spikes.copy()
    flipped[2, 1, 0] = 1.0
    h = np.full((4, 2, 3), 0.5, np.float32)
    h[2, 1, 0] = np.nextafter(np.float32(1.0), np.float32(0))  # just below threshold
    result = runner.CaseResult("id", "r", "f", "pass", "pass")
    problems = runner._compare(_case(), {"spikes": spikes, "diag:h": h}, {"spikes": flipped},
                               result, steps=4, fan_in=1)
    assert result.spike_flips == 1
    assert "t=2, index=(1, 0)" in problems[0] and "h - v_threshold = -5.96" in problems[0]
    assert "rounding-level" in problems[0]


def test_exact_values_must_be_bit_identical():
    a = np.array([0.0, 1.0], np.float32)
    result = runner.CaseResult("id", "r", "f", "pass", "pass")
    problems = runner._compare(_case(), {"exact:v_seq": a}, {"exact:v_seq": -a}, result, 1, 1)
    assert problems and "not bit-identical" in problems[0]  # -0.0 differs from 0.0
    assert not runner._compare(_case(), {"exact:v_seq": np.array([np.nan])},
                               {"exact:v_seq": np.array([-np.nan])}, result, 1, 1)


def test_relative_error_scales_per_trajectory_and_checks_nonfinite():
    e = np.array([[1.0, 1e30], [1.0, 1e30]])
    a = e.copy()
    a[1, 0] += 1e-3
    assert compare.relative_error(a, e) < 1e-30            # hidden by the 1e30 column
    assert abs(compare.relative_error(a, e, axis=0) - 1e-3) < 1e-12  # per trajectory
    assert compare.relative_error([np.inf], [np.nan]) == np.inf
    assert compare.relative_error([np.inf], [np.nan], same_nonfinite=False) == 0.0


def test_ulp_distance():
    one = np.float32(1.0)
    assert compare.max_ulp(np.nextafter(one, np.float32(2)), one) == 1
    assert compare.max_ulp(np.float32(-0.0), np.float32(0.0)) == 0


def test_catalog_ids_are_unique_and_every_kind_has_a_driver():
    cases = catalog.all_cases()
    assert len({c.id for c in cases}) == len(cases)
    from refsnn.conformance import drivers, networks  # noqa: F401 - register the drivers
    assert {r.kind for r in catalog.RECORDS} <= set(runner.DRIVERS)
