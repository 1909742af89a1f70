"""CLI command groups, one module per capability; `liucun.cli` registers them."""
