"""Everything that reads or runs an untrusted model; it runs only inside the sandbox child."""
