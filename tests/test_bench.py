"""The `refsnn bench` harness: argument and size validation (exit 2 before any
timing), case selection, interleaving, failing candidates, Ctrl-C handling,
goals and report writing. No timing figure is asserted."""
import json

import numpy as np
import pytest

from refsnn.bench import cases as cases_mod
from refsnn.bench import cli, report, runner
from refsnn.bench.cases import BenchError, Candidate, Case, Environment


def _env(**kw):
    return Environment(**{"have_torch": False, "have_spikingjelly": False,
                          "backends": ("numpy", "numpy-fused"), **kw})


def _fake_case(name, calls, labels=("ref", "a", "b"), fail=None, interrupt=False):
    """A case whose candidates append their label to `calls`; `fail` names a
    candidate that raises ValueError, `interrupt` makes every run raise
    KeyboardInterrupt."""
    def build():
        def make(label):
            def run():
                if interrupt:
                    raise KeyboardInterrupt
                if label == fail:
                    raise ValueError(f"{label} broke\nsecond line")
                calls.append(label)
            return Candidate(label, run, is_reference=(label == labels[0]))
        return [make(label) for label in labels]
    return Case(name=name, group="fake", description="fake", params={"x": 1},
                labels=labels, build=build, traffic_bytes=1000)


class _Silent(runner.Progress):
    def __init__(self):
        import io
        super().__init__(1, stream=io.StringIO(), out=io.StringIO())


# --- bad input: exit 2 before any timing ----------------------------------------------
@pytest.fixture
def no_timing(monkeypatch):
    """Fail the test if anything gets timed."""
    def refuse(*a, **k):
        raise AssertionError("timing started")
    monkeypatch.setattr(cli, "run_cases", refuse)
    monkeypatch.setattr(cli, "measure_bandwidth", refuse)


@pytest.mark.parametrize("argv, words", [
    (["--cases", "no-such-case"], ["no case matches 'no-such-case'", "--list"]),
    (["--cases", "lif-fwdbwd-*", "lif-nope-*"], ["'lif-nope-*'"]),
    (["--n", "0"], ["--n", "'0'"]),
    (["--t", "1.5"], ["--t", "'1.5'"]),
    (["--n", "many"], ["'many'", "not a number"]),
    (["--n", "1e9", "--t", "128", "--cases", "lif-fwdbwd-*"], ["lif-fwdbwd-T128-N1e9", "GiB"]),
    (["--repeats", "3"], ["--repeats", ">= 5"]),
    (["--quick", "--repeats", "0"], ["--repeats"]),
    (["--warmup", "-1"], ["--warmup"]),
    (["--backends", "cuda"], ["unknown backend", "cuda"]),
    (["--reference", "xyz"], ["--reference"]),
    (["--no-such-flag"], ["--no-such-flag"]),
])
def test_bad_input_exits_2_with_one_line_before_timing(argv, words, tmp_path, capsys,
                                                       no_timing):
    out = tmp_path / "out"
    assert cli.main(argv + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("refsnn bench")
    for word in words:
        assert word in err
    assert not out.exists()


def test_size_check_uses_the_memory_limit():
    case = cases_mod.neuron_case("lif", "fwdbwd", 32, 10_000, _env())
    cases_mod.check_sizes([case], limit=10 * case.memory_bytes)
    with pytest.raises(BenchError, match="lif-fwdbwd-T32-N1e4"):
        cases_mod.check_sizes([case], limit=case.memory_bytes)


@pytest.mark.parametrize("text, value", [("1e5", 100_000), ("4096", 4096), ("1_000", 1000)])
def test_sizes_accept_exponent_and_underscore(text, value):
    assert cli._size(text) == value


# --- listing and selection ------------------------------------------------------------
def test_list_prints_the_selected_cases(capsys):
    assert cli.main(["--list", "--quick", "--cases", "lif-fwdbwd-*,conv2d-*"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names and all(n.startswith(("lif-fwdbwd-", "conv2d-")) for n in names)
    assert any(n.startswith("conv2d-") for n in names)


def test_catalog_covers_the_issue_grid():
    names = {c.name for c in cases_mod.catalog(_env())}
    for kind in ("if", "lif", "plif"):
        for mode in ("fwd", "fwdbwd"):
            for T in (8, 32, 128):
                for N in ("1e3", "1e4", "1e5", "1e6"):
                    assert f"{kind}-{mode}-T{T}-N{N}" in names
    assert {"onb-linear-lif-n512", "onb-linear-lif-n4096", "scnn-train-T4-B32"} <= names
    assert any(n.startswith("conv2d-") for n in names)
    assert any(n.startswith("linear-") for n in names)


def test_select_keeps_catalog_order_and_dedupes():
    catalog = cases_mod.catalog(_env(), quick=True)
    chosen = cases_mod.select(catalog, ["onb-*", "if-fwd-*", "if-fwd-T4-N1e3"])
    positions = [catalog.index(c) for c in chosen]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert {c.name for c in chosen} == {"onb-linear-lif-n64", "if-fwd-T4-N1e3", "if-fwd-T8-N1e3"}


def test_neuron_case_candidates_follow_the_environment():
    case = cases_mod.neuron_case("lif", "fwd", 4, 100, _env())
    assert case.labels == ("numpy", "numpy-fused")   # no torch: no reference
    case = cases_mod.neuron_case("lif", "fwd", 4, 100,
                                 _env(have_torch=True, have_spikingjelly=True))
    assert case.labels == ("SJ cd torch", "numpy", "numpy-fused")
    assert case.traffic_bytes == 8 * 4 * 100


# --- the runner -------------------------------------------------------------------
def test_rounds_are_interleaved_with_rotating_start():
    calls = []
    rows = runner.time_case(_fake_case("c", calls), _fake_case("c", calls).candidates(),
                            repeats=3, warmup=1, bandwidth=None, progress=_Silent(),
                            measure_memory=False)
    assert calls == ["ref", "a", "b",  "ref", "a", "b",  "a", "b", "ref",  "b", "ref", "a"]
    assert [len(r.times_s) for r in rows] == [3, 3, 3]
    for r in rows:
        assert r.median_s == np.median(r.times_s)
    assert rows[0].speedup is None and rows[0].is_reference
    assert rows[1].speedup == pytest.approx(rows[0].median_s / rows[1].median_s)


def test_a_failing_candidate_gets_an_error_row_and_the_others_go_on():
    calls = []
    case = _fake_case("c", calls, fail="a")
    rows = runner.time_case(case, case.candidates(), repeats=2, warmup=1, bandwidth=1e9,
                            progress=_Silent(), measure_memory=False)
    assert rows[1].error == "ValueError: a broke" and rows[1].median_s is None
    assert calls.count("b") == 3 and calls.count("ref") == 3
    assert rows[2].bandwidth_fraction == pytest.approx(1000 / 1e9 / rows[2].median_s)


def test_interrupt_keeps_the_finished_cases():
    calls = []
    cases = [_fake_case("first", calls), _fake_case("second", calls, interrupt=True),
             _fake_case("third", calls)]
    result = runner.run_cases(cases, repeats=1, warmup=0, bandwidth=None, progress=_Silent(),
                              measure_memory=False)
    assert result.interrupted
    assert {r.case for r in result.rows} == {"first"} and len(result.rows) == 3


def test_cli_writes_the_finished_rows_when_interrupted(monkeypatch, tmp_path, capsys):
    calls = []
    fake = [_fake_case("first", calls), _fake_case("second", calls, interrupt=True)]
    monkeypatch.setattr(cases_mod, "catalog", lambda *a, **k: fake)
    monkeypatch.setattr(cli, "measure_bandwidth", lambda *a: {"best": 1e9})
    assert cli.main(["--out", str(tmp_path), "--quick", "--repeats", "1"]) == 130
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["interrupted"] is True
    assert {r["case"] for r in data["rows"]} == {"first"}
    assert "Interrupted" in (tmp_path / "bench.md").read_text()
    assert "interrupted" in capsys.readouterr().err


def test_peak_memory_sees_a_large_allocation():
    peak = runner.peak_memory(lambda: np.ones(50_000_000, np.uint8).sum())
    if peak is None:
        pytest.skip("no /proc peak-RSS counters on this system")
    assert peak >= 40_000_000


# --- goals and reports -------------------------------------------------------------
def _row(case, candidate, speedup, group="neuron", params=None, **kw):
    return {"case": case, "group": group, "candidate": candidate, "is_reference": False,
            "params": params or {}, "times_s": [1.], "median_s": 1., "speedup": speedup,
            "bandwidth_fraction": kw.get("bw"), "peak_bytes": None, "error": None}


def _lif(T, N):
    return {"kind": "lif", "mode": "fwdbwd", "T": T, "N": N}


def test_goals_check_the_matching_rows_only():
    rows = [_row("lif32a", "numpy-fused", 5.0, params=_lif(32, 100_000)),
            _row("lif32b", "numpy-fused", 3.0, params=_lif(32, 1_000_000)),
            _row("lif32small", "numpy-fused", 0.5, params=_lif(32, 1_000)),
            _row("lif8", "numpy-fused", 2.5, params=_lif(8, 100_000)),
            _row("conv", "refsnn", 1 / 1.2, group="conv", params={"op": "conv2d"}),
            _row("scnn", "numpy", 1 / 1.6, group="scnn"),
            _row("scnn", "numpy-fused", 1 / 1.1, group="scnn")]
    goals = {g["goal"].split(":")[0]: g for g in report.evaluate_goals(rows)}
    t32 = goals["numpy-fused LIF forward+backward at T=32, N >= 1e5"]
    assert t32["met"] is False and [f["case"] for f in t32["figures"]] == ["lif32a", "lif32b"]
    assert goals["numpy-fused LIF forward+backward at T=8, N >= 1e5"]["met"] is True
    assert goals["opencl LIF forward+backward at T=32, N=1e6"]["met"] is None
    assert goals["conv2d forward+backward"]["met"] is True
    assert goals["spiking-CNN training step"]["met"] is True   # the fastest backend counts


def test_reports_are_written(tmp_path):
    rows = [_row("lif-fwdbwd-T32-N1e5", "numpy-fused", 5.0, params=_lif(32, 100_000), bw=0.4),
            {**_row("lif-fwdbwd-T32-N1e5", "SJ cd torch", None, params=_lif(32, 100_000)),
             "is_reference": True},
            {**_row("lif-fwdbwd-T32-N1e5", "opencl", None, params=_lif(32, 100_000)),
             "median_s": None, "error": "RuntimeError: no device"}]
    data = {"command": "refsnn bench", "environment": {"cpus": 2, "load_before": "0.1",
                                                       "load_after": "0.2"},
            "repeats": 5, "warmup": 1, "bandwidth": {"best": 1e10}, "interrupted": False,
            "rows": rows}
    written = report.write_reports(data, tmp_path / "new")
    names = {p.name for p in written}
    assert {"bench.json", "bench.md"} <= names
    loaded = json.loads((tmp_path / "new" / "bench.json").read_text())
    assert len(loaded["rows"]) == 3 and len(loaded["goals"]) == len(report.GOALS)
    md = (tmp_path / "new" / "bench.md").read_text()
    assert "| lif-fwdbwd-T32-N1e5 | numpy-fused | 1000.00 | 1000.00 | 5.00x | 40 |" in md
    assert "failed: RuntimeError: no device" in md and "| reference |" in md
    try:
        import matplotlib  # noqa: F401
        assert "bench_neurons.png" in names
    except ImportError:
        assert "bench_neurons.png" not in names


def test_quick_run_end_to_end(tmp_path, capsys):
    argv = ["--quick", "--cases", "lif-fwdbwd-T4-N1e3", "--repeats", "1", "--warmup", "0",
            "--backends", "numpy,numpy-fused", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    assert {r["candidate"] for r in data["rows"]} >= {"numpy", "numpy-fused"}
    assert all(r["error"] is None and len(r["times_s"]) == 1 for r in data["rows"])
    assert "lif-fwdbwd-T4-N1e3" in capsys.readouterr().out


def test_profile_lists_the_candidates_functions(tmp_path):
    calls = []
    case = _fake_case("c", calls, labels=("ref", "a"))
    rows = runner.time_case(case, case.candidates(), repeats=1, warmup=0, bandwidth=None,
                            progress=_Silent(), measure_memory=False, profile=True)
    assert all("ncalls" in r.profile and "run" in r.profile for r in rows)
    data = {"command": "x", "environment": {"cpus": 1, "load_before": "0", "load_after": "0"},
            "repeats": 1, "warmup": 0, "bandwidth": {}, "interrupted": False, "rows": rows}
    written = report.write_reports(data, tmp_path)
    assert "## c / a" in (tmp_path / "profiles.md").read_text()
    assert tmp_path / "profiles.md" in written
