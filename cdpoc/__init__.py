"""cdpoc: stand up a classic AWS CI/CD environment with boto3, ship revisions through it, tear it down."""

__version__ = "0.1.0"
