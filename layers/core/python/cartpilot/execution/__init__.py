"""Running a plan: the step executor, compensation, and how a goal ends (confirmation, receipt, outcomes)."""
