"""Golden bundles: export then check passes for refsnn and fails readably for
a wrong implementation; every bad file or `--impl` is a one-line error with
exit status 2; the format reads without refsnn; the worked example runs."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from refsnn import golden
from refsnn.golden_cli import main
from examples_loader import load_example

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The default catalog, exported once without SpikingJelly (fast)."""
    directory = tmp_path_factory.mktemp("golden") / "bundle"
    assert main(["export", str(directory), "--no-verify"]) == 0
    return directory


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def write_impl(tmp_path, body: str) -> str:
    """A user's implementation file; returns its --impl spec."""
    path = tmp_path / "user_impl.py"
    path.write_text("import numpy as np\nfrom refsnn import golden\n\n" + body)
    return f"{path}:impl"


# ----------------------------------------------------------------------------
# export and check
# ----------------------------------------------------------------------------
def test_default_catalog_is_small_and_covers_every_component(bundle):
    index = json.loads((bundle / "index.json").read_text())
    assert 20 <= len(index["cases"]) <= 50
    components = {json.loads((bundle / n / "manifest.json").read_text())["component"]
                  for n in index["cases"]}
    assert components == {"neuron", "surrogate", "network"}


def test_refsnn_passes_its_own_bundle(bundle, capsys):
    rc, out, _ = run(capsys, "check", bundle)
    assert rc == 0 and re.search(r"(\d+) case\(s\), \1 passed, 0 failed", out)
    rc, out, _ = run(capsys, "check", bundle, "--exact", "--select", "plif")
    assert rc == 0 and "0 failed" in out


def test_fused_backend_passes_within_tolerance(bundle, tmp_path, capsys):
    """A real, not bitwise-equal implementation of the backward (closed-form
    BPTT): refsnn's numpy-fused backend, declining what it cannot run."""
    spec = write_impl(tmp_path, """
def impl(manifest, arrays):
    cfg = manifest["config"]
    if manifest["component"] != "neuron" or cfg.get("step_mode") != "m" or \\
            not cfg.get("training", True) or cfg["class"] not in (
            "IFNode", "LIFNode", "ParametricLIFNode", "QIFNode", "EIFNode"):
        raise NotImplementedError("fused neurons only")
    original = golden.outputs.neuron_from_config
    golden.outputs.neuron_from_config = lambda c, d, **kw: original(c, d, backend="numpy-fused")
    try:
        return golden.reference_impl(manifest, arrays)
    finally:
        golden.outputs.neuron_from_config = original
""")
    rc, out, _ = run(capsys, "check", bundle, "--impl", spec)
    assert rc == 0
    passed = int(re.search(r"(\d+) passed", out).group(1))
    assert passed >= 10 and "declined by the implementation (fused neurons only)" in out


def test_wrong_implementation_fails_with_a_readable_report(bundle, tmp_path, capsys):
    spec = write_impl(tmp_path, """
def impl(manifest, arrays):
    out = golden.reference_impl(manifest, arrays)
    if manifest["component"] == "neuron" and "h_seq" in out:
        v_th = manifest["config"]["kwargs"].get("v_threshold", 1.0)
        out["spike_seq"] = (out["h_seq"] > v_th).astype(out["spike_seq"].dtype)
    return out
""")
    rc, out, _ = run(capsys, "check", bundle, "--impl", spec, "--select", "lif_decay_hard_vr")
    assert rc == 1
    assert "FAIL  lif_decay_hard_vreset_f32" in out and "1 output(s) differ: spike_seq" in out
    assert re.search(r"first flip at t=0, index=\(\d+, \d+\): expected 1, actual 0; "
                     r"h - v_threshold = 0", out)
    assert "firing rule differs" in out and "0 passed, 1 failed" in out


def test_crashing_or_declining_implementations(bundle, tmp_path, capsys):
    spec = write_impl(tmp_path, "def impl(manifest, arrays):\n    raise KeyError('v_seq')\n")
    rc, out, _ = run(capsys, "check", bundle, "--impl", spec, "--select", "if_hard")
    assert rc == 1 and "the implementation raised KeyError: 'v_seq'" in out
    spec = write_impl(tmp_path, "def impl(manifest, arrays):\n    raise NotImplementedError\n")
    rc, out, err = run(capsys, "check", bundle, "--impl", spec)
    assert rc == 1 and "declined every case" in err
    spec = write_impl(tmp_path, "def impl(manifest, arrays):\n    return {'spike_seq': None}\n")
    rc, out, _ = run(capsys, "check", bundle, "--impl", spec, "--select", "if_hard")
    assert rc == 1 and "spike_seq: not returned" in out


def test_missing_optional_outputs_are_listed_not_failed(bundle, tmp_path, capsys):
    spec = write_impl(tmp_path, """
def impl(manifest, arrays):
    return {"spike_seq": golden.reference_impl(manifest, arrays)["spike_seq"]}
""")
    rc, out, _ = run(capsys, "check", bundle, "--impl", spec, "--select", "if_hard")
    assert rc == 0 and "not checked: v_seq, h_seq, grad_x_seq, grad_v_init" in out


def test_export_records_spikingjelly_when_it_verified(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("spikingjelly")
    from importlib.metadata import version
    rc, out, _ = run(capsys, "export", tmp_path / "b", "--select", "plif_decay_hard_f32")
    assert rc == 0 and "verified against SpikingJelly" in out
    manifest = json.loads((tmp_path / "b" / "plif_decay_hard_f32" / "manifest.json").read_text())
    assert manifest["spikingjelly_version"] == version("spikingjelly")
    assert manifest["spikingjelly_check"]["spike_seq"] == "64 spikes equal"


def test_export_without_spikingjelly_records_null(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(golden.bundle, "spikingjelly_version", lambda: None)
    rc, out, _ = run(capsys, "export", tmp_path / "b", "--select", "if_hard")
    assert rc == 0 and "not importable" in out
    manifest = json.loads((tmp_path / "b" / "if_hard_f32" / "manifest.json").read_text())
    assert manifest["spikingjelly_version"] is None and manifest["spikingjelly_check"] is None


def test_export_refuses_a_non_empty_directory(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    rc, _, err = run(capsys, "export", tmp_path, "--no-verify")
    assert rc == 2 and "not empty" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------
# bad input: one line naming the file or field, exit 2, never unpickled
# ----------------------------------------------------------------------------
CASE = "plif_decay_hard_f32"


def edit_manifest(folder, change):
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 9])


def corrupt_magic(path):
    path.write_bytes(b"NOTNPY" + path.read_bytes()[6:])


def corrupt_header(path):
    path.write_bytes(path.read_bytes().replace(b"'descr'", b"'dexxx'"))


BAD_INPUTS = {
    "missing npy": (lambda f: (f / "x_seq.npy").unlink(), "x_seq.npy: file missing"),
    "truncated npy": (lambda f: truncate(f / "grad_x_seq.npy"), "grad_x_seq.npy: truncated"),
    "bad magic": (lambda f: corrupt_magic(f / "v_init.npy"), "v_init.npy: not a valid .npy"),
    "bad header": (lambda f: corrupt_header(f / "h_seq.npy"), "h_seq.npy: not a valid .npy"),
    "wrong dtype": (lambda f: np.save(f / "x_seq.npy", np.zeros((8, 2, 4))),
                    "x_seq.npy: dtype <f8 but manifest.json says float32"),
    "wrong shape": (lambda f: np.save(f / "x_seq.npy", np.zeros((8, 2, 5), np.float32)),
                    "x_seq.npy: shape [8, 2, 5] but manifest.json says [8, 2, 4]"),
    "unknown schema version": (lambda f: edit_manifest(f, lambda m: m.update(schema_version=7)),
                               "manifest.json: unknown schema_version 7"),
    "missing field": (lambda f: edit_manifest(f, lambda m: m.pop("dtype")),
                      "manifest.json: missing field 'dtype'"),
    "missing array entry": (lambda f: edit_manifest(f, lambda m: m["arrays"].pop("x_seq")),
                            "manifest.json: missing field 'arrays.x_seq'"),
    "missing config field": (lambda f: edit_manifest(f, lambda m: m["config"].pop("kwargs")),
                             "manifest.json: missing field 'config.kwargs'"),
    "inconsistent shapes": (lambda f: edit_manifest(
        f, lambda m: m["arrays"]["grad_x_seq"].update(shape=[8, 2, 3])),
        "arrays.grad_x_seq.shape [8, 2, 3] differs from arrays.x_seq.shape [8, 2, 4]"),
    "path in file name": (lambda f: edit_manifest(
        f, lambda m: m["arrays"]["x_seq"].update(file="../x_seq.npy")),
        "manifest.json: arrays.x_seq.file: must be a plain file name"),
    "invalid json": (lambda f: (f / "manifest.json").write_text("{\"schema\": "),
                     "manifest.json: invalid JSON"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_case_files_are_one_line_errors(bundle, tmp_path, capsys, name):
    folder = tmp_path / CASE
    shutil.copytree(bundle / CASE, folder)
    damage, expected = BAD_INPUTS[name]
    damage(folder)
    rc, out, err = run(capsys, "check", folder)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and expected in err, err


class Alarm:
    """Unpickling this writes a file: proof that nothing was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "unpickled!"))


def test_pickled_object_arrays_are_refused_unread(bundle, tmp_path, capsys):
    folder = tmp_path / CASE
    shutil.copytree(bundle / CASE, folder)
    marker = tmp_path / "unpickled.txt"
    array = np.empty((8, 2, 4), dtype=object)
    array[...] = Alarm(marker)
    np.save(folder / "x_seq.npy", array, allow_pickle=True)
    rc, _, err = run(capsys, "check", folder)
    assert rc == 2 and "x_seq.npy: holds a pickled object array" in err
    assert not marker.exists()


def test_bundle_index_errors(bundle, tmp_path, capsys):
    rc, _, err = run(capsys, "check", tmp_path)
    assert rc == 2 and "index.json: file missing" in err
    shutil.copytree(bundle, tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "qif_f32")
    rc, _, err = run(capsys, "check", tmp_path / "b")
    assert rc == 2 and "qif_f32/manifest.json: file missing" in err
    (tmp_path / "b" / "index.json").write_text(json.dumps(
        {"schema": "refsnn.golden", "schema_version": 2, "cases": ["if_hard_f32"]}))
    rc, _, err = run(capsys, "check", tmp_path / "b")
    assert rc == 2 and "index.json: unknown schema_version 2" in err


@pytest.mark.parametrize("spec, expected", [
    ("no_such_module_xyz:impl", "cannot import 'no_such_module_xyz': ModuleNotFoundError"),
    ("refsnn.golden:no_such_function", "has no attribute 'no_such_function'"),
    ("refsnn.golden", "expected 'module:function'"),
    ("missing_file.py:impl", "file missing_file.py not found"),
])
def test_impl_that_cannot_be_loaded(bundle, capsys, spec, expected):
    rc, out, err = run(capsys, "check", bundle, "--impl", spec)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and expected in err


def test_impl_whose_import_fails(bundle, tmp_path, capsys):
    spec = write_impl(tmp_path, "raise RuntimeError('needs a GPU')\n")
    rc, _, err = run(capsys, "check", bundle, "--impl", spec)
    assert rc == 2 and "RuntimeError: needs a GPU" in err


def test_usage_errors_exit_2(capsys):
    rc, _, err = run(capsys, "check")
    assert rc == 2 and "DIR" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run(capsys, "frobnicate", "x")
    assert rc == 2


# ----------------------------------------------------------------------------
# the format reads without refsnn (json + .npy), as documented
# ----------------------------------------------------------------------------
def load(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    arrays = {n: np.load(folder / e["file"], allow_pickle=False)
              for n, e in manifest["arrays"].items()}
    return manifest, arrays


@pytest.mark.parametrize("case", ["if_hard_f32", "lif_decay_hard_vreset_f32",
                                  "lif_nodecay_soft_detach_f32"])
def test_documented_conventions_reproduce_the_forward(bundle, case):
    """Recompute spikes, h and v from docs/golden-format.md in plain NumPy."""
    manifest, a = load(bundle / case)
    kw = manifest["config"]["kwargs"]
    v_th, v_reset, tau = kw.get("v_threshold", 1.0), kw.get("v_reset", 0.0), kw.get("tau")
    v = a["v_init"]
    for t in range(a["x_seq"].shape[0]):
        x = a["x_seq"][t]
        if tau is None:
            h = v + x
        elif kw.get("decay_input", True):
            h = v + (x - v) / tau if not v_reset else v + (x - (v - v_reset)) / tau
        else:
            h = v * (1. - 1. / tau) + x if not v_reset else v - (v - v_reset) / tau + x
        s = (h - v_th >= 0).astype(h.dtype)
        v = h - s * v_th if v_reset is None else (1. - s) * h + s * v_reset
        np.testing.assert_array_equal(h, a["h_seq"][t])
        np.testing.assert_array_equal(s, a["spike_seq"][t])
        np.testing.assert_array_equal(v, a["v_seq"][t])


# ----------------------------------------------------------------------------
# docs/testing-your-kernel.md: its code is examples/test_my_lif.py, which runs
# ----------------------------------------------------------------------------
def test_doc_code_blocks_are_the_example():
    doc = (ROOT / "docs" / "testing-your-kernel.md").read_text()
    example = (ROOT / "examples" / "test_my_lif.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert len(blocks) >= 3
    for block in blocks:
        assert block.strip() in example, block[:200]


def test_worked_example_runs(tmp_path):
    pytest.importorskip("torch")
    example = load_example("test_my_lif")
    example.test_my_lif_matches_refsnn()
    example.test_my_lif_passes_the_golden_bundle(tmp_path)
