"""intel package."""
