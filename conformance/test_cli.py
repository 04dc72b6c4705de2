"""`refsnn conformance`: exit codes, report files, early failures."""
import json
import subprocess
import sys

import pytest

from refsnn.conformance import cli


def test_missing_torch_exits_2_with_the_install_command(tmp_path):
    code = ("import sys; sys.modules['torch'] = None; "
            "from refsnn.conformance import cli; "
            f"sys.exit(cli.main(['--report', {str(tmp_path)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert cli.INSTALL_COMMAND in proc.stderr


def test_unwritable_report_directory_fails_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["--report", str(blocker / "sub"), "--filter", "optim"]) == 2
    err = capsys.readouterr().err
    assert "cannot write reports" in err and "cases" not in err


def test_bad_arguments_exit_2(capsys):
    assert cli.main(["--filter", "("]) == 2
    assert cli.main(["--examples", "0"]) == 2


def test_filtered_run_writes_reports(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("spikingjelly")
    code = cli.main(["--report", str(tmp_path), "--filter", r"ab\.IFNode\[m-numpy-float32",
                     "--examples", "2", "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "neuron (AB)" in out and "spike flips" in out
    payload = json.loads((tmp_path / "conformance.json").read_text())
    assert payload["summary"]["neuron (AB)"]["passed"] == len(payload["cases"]) > 0
    assert "# refsnn conformance report" in (tmp_path / "conformance.md").read_text()


def test_known_defects_do_not_fail_the_run(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("spikingjelly")
    assert cli.main(["--report", str(tmp_path), "--filter", r"ab\.LIAFNode\[s-", "-q"]) == 0
    assert "known SpikingJelly defect" in (tmp_path / "conformance.md").read_text()
