import pytest

from i2proxy.i2p.names import is_b32_name, is_b33_name
from i2proxy.naming.errors import InvalidName
from i2proxy.naming.names import (
    normalize,
    parent_domain,
    validate_hostname,
)

B32 = "kqypgjpjwrphnzebod5ev3ts2vtii6e5tntrg4rnfijqc7rypldq"


@pytest.mark.parametrize(
    "name",
    [
        "a.i2p",
        "stats.i2p",
        "i2p-projekt.i2p",
        "pull.git.repo.i2p",
        "00.i2p",
        "xn--bcher-kva.i2p",
        "a" * 63 + ".i2p",
    ],
)
def test_valid_names_are_accepted(name):
    assert validate_hostname(name) == name


def test_names_are_lowercased():
    assert validate_hostname("  Stats.I2P ") == "stats.i2p"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("stats.com", "must end with .i2p"),
        (".i2p", "empty label"),
        ("a" * 64 + ".i2p", "longer than 67"),
        ("st_ats.i2p", "illegal character '_'"),
        ("stäts.i2p", "illegal character"),
        (".stats.i2p", "must not start"),
        ("-stats.i2p", "must not start"),
        ("a..b.i2p", "'..'"),
        ("a-.i2p", "'-.'"),
        ("a.-b.i2p", "'.-'"),
        ("ab--cd.i2p", "xn--"),
        ("proxy.i2p", "reserved"),
        ("router.i2p", "reserved"),
        ("console.i2p", "reserved"),
        ("b32.i2p", "reserved"),
        ("foo.console.i2p", "subdomain of a reserved"),
        (f"{B32}.b32.i2p", "reserved"),
        (f"{B32}.i2p", "looks like a b32"),
        ("sta ts.i2p", "illegal character ' '"),
    ],
)
def test_invalid_names_are_refused_with_the_rule_they_break(name, reason):
    with pytest.raises(InvalidName) as info:
        validate_hostname(name)
    assert reason in str(info.value)


def test_b32_and_b33_shapes():
    assert is_b32_name(f"{B32}.b32.i2p")
    assert not is_b32_name(f"{B32[:-1]}.b32.i2p")
    assert not is_b32_name(f"{B32}1.b32.i2p")  # '1' is not base32
    assert is_b33_name("a" * 56 + ".b32.i2p")
    assert not is_b33_name(f"{B32}.b32.i2p")


def test_normalize_maps_the_alt_tld_and_trailing_dot():
    assert normalize("Stats.I2P.alt") == "stats.i2p"
    assert normalize("stats.i2p.") == "stats.i2p"


def test_parent_domain():
    assert parent_domain("a.b.i2p") == "b.i2p"
    assert parent_domain("b.i2p") is None
