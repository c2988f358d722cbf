"""A version in production: drift and accuracy per window and version (`loan.monitor`)."""
