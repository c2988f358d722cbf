#!/bin/sh
# The compose MLflow server, authenticated as `make up` runs its own (stack/mlflow_server.py):
# MLflow's basic-auth app, `admin` the first user, others reading what they did not create. `make up`
# then makes the users trainer (logs, registers, promotes) and serving (loads) over MLflow's REST API.
#
# Needs LOANS_MLFLOW_PASSWORD_ADMIN (`make secrets`, then `docker compose --env-file
# .loans/secrets.env up -d`) and an mlflow with its auth extra (infra/mlflow/Dockerfile).
# tests/integration/test_compose_stack.py runs this same script with the project's mlflow.
set -eu
: "${LOANS_MLFLOW_PASSWORD_ADMIN:?run make secrets, then docker compose --env-file .loans/secrets.env up -d}"
home=${MLFLOW_HOME:-/mlflow}
host=${MLFLOW_HOST:-0.0.0.0}
port=${MLFLOW_PORT:-5000}

umask 077  # the users' database and the config hold secrets
mkdir -p "$home/artifacts"
cat > "$home/basic_auth.ini" <<INI
[mlflow]
default_permission = READ
database_uri = sqlite:///$home/auth.db
admin_username = admin
admin_password = $LOANS_MLFLOW_PASSWORD_ADMIN
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
export MLFLOW_AUTH_CONFIG_PATH="$home/basic_auth.ini"
# CSRF protection of the auth app's forms: stable across restarts, as secret as the password
MLFLOW_FLASK_SERVER_SECRET_KEY=$(printf 'csrf:%s' "$LOANS_MLFLOW_PASSWORD_ADMIN" | sha256sum | cut -d' ' -f1)
export MLFLOW_FLASK_SERVER_SECRET_KEY
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
exec mlflow server --app-name basic-auth --backend-store-uri "sqlite:///$home/mlflow.db" \
  --artifacts-destination "$home/artifacts" --host "$host" --port "$port" --workers 1
