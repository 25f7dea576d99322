"""Telling people: status notices for every ending, approval reminders, and the email channel
(receipts and shipping notices by email, and email when the topic cannot be reached)."""
