"""After the order: what the merchant reports about it (events, tracking, returns)."""
