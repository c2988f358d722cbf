"""The project's error types: each message says what was wrong, the value received and the fix."""


class LoanAnalyticsError(Exception):
    """Base for every error the CLIs report as one line (exit status 2)."""


class ConfigError(LoanAnalyticsError):
    """A setting or CLI flag has a value the project cannot use."""


class ServiceError(LoanAnalyticsError):
    """A local service (Kafka broker, MLflow server) could not be started, reached or stopped."""


class PortInUseError(ServiceError):
    """A port the local stack needs is taken by a process the stack did not start."""


class DeliveryError(LoanAnalyticsError):
    """Kafka did not acknowledge every event that was sent."""


class DataError(LoanAnalyticsError):
    """Input data (a CSV, an event) could not be read."""
