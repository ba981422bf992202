"""WonderQ: a durable, SQS-style message queue broker."""

__version__ = "0.1.0"
