"""Code verifier: placeholder module, registered by the sandbox-backed implementation."""
