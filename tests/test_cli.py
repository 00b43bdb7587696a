import pytest

from serving.cli import Parser, plain


def test_plain_strips_rst_markup() -> None:
    text = "run ``serve`` via :func:`serving.serve.main`"
    assert plain(text) == "run serve via serving.serve.main"
    assert plain("Command line::\n\n    tool ::x\n") == "Command line:\n\n    tool ::x\n"


@pytest.mark.parametrize("module", ["serving.train", "serving.serve", "scripts.endpoints",
                                    "scripts.capture", "scripts.batch_transform"])
def test_module_help_has_no_rst_markup(module: str) -> None:
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert "::\n" not in out and "``" not in out and ":func:" not in out, out


def test_help_shows_defaults_and_no_markup(capsys: pytest.CaptureFixture[str]) -> None:
    parser = Parser(prog="tool", description="Does ``things``.")
    parser.add_argument("--size", type=int, default=3)
    parser.add_argument("--name", default="x", help="the ``name``")
    parser.add_argument("--flag", action="store_true", help="a switch")
    sub = parser.add_subparsers(dest="cmd")
    child = sub.add_parser("go", description="Go ``now``.")
    child.add_argument("--speed", default="fast")
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out and "Does things." in out
    assert "default: 3" in out and "the name (default: x)" in out
    assert "a switch\n" in out  # booleans show no default
    with pytest.raises(SystemExit):
        parser.parse_args(["go", "--help"])
    out = capsys.readouterr().out
    assert "Go now." in out and "default: fast" in out
