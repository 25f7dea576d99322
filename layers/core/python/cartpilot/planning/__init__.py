"""Planning: turning a shopper's words into a concrete, grounded plan."""
