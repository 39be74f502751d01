"""Loading and validating rules.yaml."""
