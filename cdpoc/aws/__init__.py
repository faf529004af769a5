"""The only package that talks to AWS: a client factory, and one module per area with its handlers."""
