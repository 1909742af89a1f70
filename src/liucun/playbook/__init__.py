"""The playbook: every strategy and threshold an operator may change, as one validated file."""
