"""Naming: hosts.txt address books, subscriptions and name validation."""
