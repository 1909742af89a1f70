"""liucun (留存): a retention and growth engine for mini-programs and apps."""

__version__ = "0.1.0"
