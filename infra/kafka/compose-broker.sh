#!/bin/sh
# The compose broker, secured as `make up` secures its own (stack/kafka.py): one KRaft node
# (broker + controller), SASL/SCRAM-SHA-512 on the client listener, SASL/PLAIN on the controller's,
# Kafka's StandardAuthorizer denying what no ACL allows, `admin` the one super user. The admin's
# SCRAM credential is written when the storage is formatted; `make up` then makes every service's
# principal, ACLs and quotas as admin (stack/acl.py), as it does on its own broker.
#
# Needs LOANS_KAFKA_PASSWORD_ADMIN (`make secrets`, then `docker compose --env-file .loans/secrets.env
# up -d`). The paths default to the apache/kafka image's; tests/integration/test_compose_stack.py
# runs this same script with the project's Maven jars.
set -eu
: "${LOANS_KAFKA_PASSWORD_ADMIN:?run make secrets, then docker compose --env-file .loans/secrets.env up -d}"
password=$LOANS_KAFKA_PASSWORD_ADMIN
case $password in
  *'"'* | *'\'* | *' '*) echo "error: LOANS_KAFKA_PASSWORD_ADMIN may not hold quotes, backslashes or spaces" >&2; exit 2 ;;
esac
libs=${KAFKA_LIBS:-/opt/kafka/libs}
data=${KAFKA_DATA:-/var/lib/kafka/data}
config=${KAFKA_CONFIG:-/var/lib/kafka/server.properties}
bind=${KAFKA_BIND:-0.0.0.0}
port=${KAFKA_PORT:-9092}
advertised=${KAFKA_ADVERTISED:-localhost:9092}
controller=${KAFKA_CONTROLLER:-localhost:9093}
heap=${KAFKA_HEAP:-512m}

umask 077  # the config and the admin's client file hold the password
mkdir -p "$data"
cat > "$config" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$controller
listeners=SASL_PLAINTEXT://$bind:$port,CONTROLLER://$controller
advertised.listeners=SASL_PLAINTEXT://$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_PLAINTEXT
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$password" user_admin="$password";
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$password";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin
allow.everyone.if.no.acl.found=false
log.dirs=$data
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
message.max.bytes=2097152
PROPS
# the admin's client settings, for the healthcheck and Kafka's tools (--command-config)
cat > "$(dirname "$config")/admin.properties" <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$password";
PROPS

if [ ! -f "$data/meta.properties" ]; then
  cluster=$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid)
  # the arguments from an owner-only file (`java @file`): the password never shows in `ps`
  args=$(dirname "$config")/format.args
  printf '%s\n' -cp "\"$libs/*\"" kafka.tools.StorageTool format --standalone "--cluster-id=$cluster" \
    -c "\"$config\"" --add-scram "\"SCRAM-SHA-512=[name=admin,password=$password]\"" > "$args"
  java "@$args"
  rm -f "$args"
fi
log4j=${KAFKA_LOG4J:-/opt/kafka/config/log4j2.yaml}
if [ -f "$log4j" ]; then
  exec java "-Xmx$heap" "-Xms$heap" -XX:+UseG1GC "-Dlog4j2.configurationFile=$log4j" -cp "$libs/*" kafka.Kafka "$config"
fi
exec java "-Xmx$heap" "-Xms$heap" -XX:+UseG1GC -cp "$libs/*" kafka.Kafka "$config"
