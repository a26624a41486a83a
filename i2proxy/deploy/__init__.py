"""Deployment helpers: what a container or a service manager needs around ``i2proxy run``."""
