"""The plan: its model and schema, the validator and its verdicts, price drift and the price check."""
