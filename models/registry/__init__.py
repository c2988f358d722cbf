"""MLflow: reaching the tracking server, and the registry's versions and aliases (resolve, load,
promote `candidate` to `champion`)."""
