"""The sandbox merchant: a UCP 2026-04-08 REST subset with a realistic catalog, for local runs and tests."""
