"""Bulk-update attributes of existing Amazon Cognito users from CSV or Parquet."""

__version__ = "0.1.0"
