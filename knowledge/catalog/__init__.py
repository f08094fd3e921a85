"""The service catalogue: configuration items that incidents and articles refer to."""
