"""The shopper's own view of a goal: a signed, expiring link to a read-only page, with undo."""
