"""A private I2P network of real i2pd routers on this machine, for tests, demo and benchmarks."""
