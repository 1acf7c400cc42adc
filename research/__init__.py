"""Research studies around kp_motion: code that uses the package's public API and that nothing
in kp_motion imports (see research/README.md)."""
