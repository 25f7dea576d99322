"""Secrets Manager rotation functions owned by the infrastructure."""
