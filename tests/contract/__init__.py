"""Contract tests: each port's in-memory fake and its real adapter (on moto) pass the same tests."""
