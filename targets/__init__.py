"""Target profiles (TOML data in this folder), their loader and host detection."""
