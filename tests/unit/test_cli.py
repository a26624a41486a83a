import subprocess
import sys

from i2proxy import __version__
from i2proxy.cli import main


def test_version_flag_prints_the_package_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert __version__ in capsys.readouterr().out


def test_no_command_prints_help_and_fails():
    proc = subprocess.run(
        [sys.executable, "-m", "i2proxy"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "usage: i2proxy" in proc.stderr


def test_the_test_network_is_not_part_of_the_product():
    """`testnet` is test infrastructure: no `i2proxy testnet`/`demo` command, not in the wheel."""
    import tomllib
    from pathlib import Path

    from setuptools import find_packages

    from i2proxy.cli import build_parser

    subcommands = next(a for a in build_parser()._actions if a.dest == "command").choices  # type: ignore[union-attr]
    assert "testnet" not in subcommands and "demo" not in subcommands
    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = find_packages(str(root), include=config["packages"]["find"]["include"])
    assert "i2proxy.proxy" in packages
    assert not any(p == "testnet" or p.startswith("testnet.") for p in packages)
