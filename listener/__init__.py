"""listener: social listening and crisis alerting."""

__version__ = "0.1.0"
