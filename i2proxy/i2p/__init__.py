"""I2P data structures, keys and signatures: pure functions and value types, no I/O."""
