"""The README's Python session runs as written: its `>>>` lines as a doctest from the repository
root, against the installed wheel and the real MobileNetV2 weights."""
import doctest
import os

import pytest

from conftest import MOBILENET_WEIGHTS, REQUIRE_MODELS, ROOT


def test_readme_python_session(monkeypatch):
    if not MOBILENET_WEIGHTS.exists():
        if REQUIRE_MODELS:
            pytest.fail(f"{MOBILENET_WEIGHTS} is missing (LOUPE_REQUIRE_MODELS=1)")
        pytest.skip("MobileNetV2 weights not installed (make models)")
    monkeypatch.chdir(ROOT)
    # Code fences end an example's expected output, as a blank line does.
    text = "\n".join("" if line.startswith("```") else line for line in (ROOT / "README.md").read_text().splitlines())
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, "README.md", str(ROOT / "README.md"), 0)
    assert len(test.examples) >= 6, "the README's Python session went missing"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} README examples failed (output above)"
