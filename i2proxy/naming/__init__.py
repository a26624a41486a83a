"""Naming: hosts.txt address books, subscriptions and name validation.

``AddressBook`` is the entry point for the proxy frontends: ``lookup(name)`` returns what a
Dialer takes (a Destination, or the ``.b32.i2p`` name itself), ``reverse(hash)`` the name.
"""

from i2proxy.i2p.names import is_b32_name
from i2proxy.naming.addressbook import DEFAULT_SUBSCRIPTIONS, AddressBook, default_data_dir
from i2proxy.naming.errors import (
    InvalidDestination,
    InvalidName,
    NameConflict,
    NamingError,
    ReadOnlyBook,
    UnknownBook,
)
from i2proxy.naming.names import is_valid_hostname, normalize, validate_hostname

__all__ = [
    "DEFAULT_SUBSCRIPTIONS",
    "AddressBook",
    "InvalidDestination",
    "InvalidName",
    "NameConflict",
    "NamingError",
    "ReadOnlyBook",
    "UnknownBook",
    "default_data_dir",
    "is_b32_name",
    "is_valid_hostname",
    "normalize",
    "validate_hostname",
]
