"""A goal's lifecycle: the record and its status table, intake, views, undo, flow events, and the ports it needs."""
