"""Staged rollout per brand: which goals may run mutating steps (stage, pilot users, kill switch)."""
