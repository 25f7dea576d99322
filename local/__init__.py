"""The local stack: in-process AWS, the HTTP gateway and the sandbox merchant. Never bundled into Lambda."""
