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
