"""The README's promises: its example runs, and its two commands stay what CI runs."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _code_blocks(language: str):
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_opens_with_the_two_set_up_commands():
    text = README.read_text()
    first, second = _code_blocks("bash")[:2]
    assert text.index("<!-- main-command -->") < text.index(first) < text.index(second)
    assert first.strip().endswith("refsnn conformance")
    assert "pytest" in second
    ci = (README.parent / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci  # .ci/run executes the README's second command


def test_readme_python_example_runs():
    namespace = {}
    exec(compile(_code_blocks("python")[0], "README.md", "exec"), namespace)
    assert namespace["spikes"].shape == (8, 2, 16, 8, 8)
