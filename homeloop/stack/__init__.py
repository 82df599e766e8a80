"""The local stack: broker, Redis and PostgreSQL from pip-installed binaries when not given."""

from homeloop.stack.launcher import LocalStack
from homeloop.stack.provision import provision

__all__ = ["LocalStack", "provision"]
