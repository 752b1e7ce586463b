"""detect package."""
