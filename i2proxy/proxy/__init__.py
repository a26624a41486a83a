"""Proxy frontends: SOCKS4/4a/5 and HTTP, on top of the dialer and the address book."""
