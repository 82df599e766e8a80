"""homeloop."""
