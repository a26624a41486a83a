"""SAM v3 client backend, behind the same dialer interface as the native I2CP stack."""
