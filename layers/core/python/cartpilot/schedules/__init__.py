"""Scheduled and recurring goals: schedules, their occurrences and standing mandates."""
