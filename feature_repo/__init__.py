"""feature_repo."""
