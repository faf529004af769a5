"""The typed spec of each resource kind: what the declarations build and the handlers read."""
