#!/bin/sh
# The secrets of the production-like stack (docker-compose.yml), made the way `sealtrail up` makes
# the local stack's (docs/security.md, "Connections and secrets, hop by hop"): a CA, a certificate
# for each server, a random password for each identity, and the files each container reads them
# from, in the volume mounted at $SECRETS_DIR. POSIX sh; needs openssl, od and sha256sum.
#
#   make-secrets.sh                   make what is missing and keep what exists: the one-shot
#                                     `sealtrail-secrets` service runs this as root
#   make-secrets.sh kafka             start Kafka, the Schema Registry or ClickHouse (their
#   make-secrets.sh schema-registry   services' command) with the secrets they only take from
#   make-secrets.sh clickhouse        their environment, read here from the volume, so that none is
#                                     written in docker-compose.yml
#
# One directory per service, holding only what that service needs, mode 0700 and owned by the
# user that service runs as; docker-compose.yml mounts each service's directory alone (a volume
# subpath, read-only), with public/ (the CA certificate): no service but sealtrail-secrets sees
# another's files or .init/. The sealtrail services all run as one user, so the mounts, not the
# owners, keep them apart.
#
#   .init/             the CA's key and every key and password: this script's alone
#   public/            ca.pem, the CA every client trusts (0644)
#   kafka/ schema-registry/ clickhouse/ grafana/   each server's key, certificate and passwords
#   seal/ sink/ api/ export/ retention/            each component's client properties
#                      (<name>.properties: Kafka and the registry), its ClickHouse password
#                      (clickhouse-<name>.password), the readers' one for api/ and export/, and
#                      the API's certificate and key
#   operator/          operator.properties: the operator's Kafka and registry login (topics)
#   admin/             clickhouse-admin.password: ClickHouse's administrator (migrations, API
#                      key commands)
#
# Kept across runs: the CA, the keys and the passwords (clients, and Kafka's storage, were given
# them). A certificate is made again, with the same key, when it is missing, expires within 30
# days or does not come from the CA. Every other file is written again from them. To rotate a
# password, delete its file under .init/ and run this again (and for a Kafka password, change the
# SCRAM credential with kafka-configs: docs/security.md); to start over, delete this volume and
# the kafka-data volume together.
#
# With SEALTRAIL_KEYS_VOLUME set (docker-compose.yml: the sealtrail-keys volume), that directory
# is given to the sealtrail user, so that `sealtrail keys init` need not run as root.
set -eu
umask 077

SECRETS_DIR=${SECRETS_DIR:-/secrets}
# What only this script reads: the CA's key and certificate, every key and password.
STATE=$SECRETS_DIR/.init
# The CA every client trusts (SEALTRAIL_CA_FILE, ssl.ca.location, Java's PEM truststores), the
# one file any service may mount besides its own directory.
CA=$SECRETS_DIR/public/ca.pem

# The users the images run as, each owning the directory of its own files.
KAFKA_UID=${KAFKA_UID:-1000}          # apache/kafka: appuser
REGISTRY_UID=${REGISTRY_UID:-1000}    # confluentinc/cp-schema-registry: appuser
CLICKHOUSE_UID=${CLICKHOUSE_UID:-101} # clickhouse/clickhouse-server: clickhouse
GRAFANA_UID=${GRAFANA_UID:-472}       # grafana/grafana: grafana
SEALTRAIL_UID=${SEALTRAIL_UID:-10001} # infra/docker/Dockerfile: sealtrail

# The sealtrail identities, as in the local stack: NAME:ROLE, each with the SCRAM user
# sealtrail-NAME on the broker and the user NAME, reader or writer, on the registry.
IDENTITIES="seal:write sink:read monitor:write export:read retention:write api:write operator:write"
# The broker's own SCRAM user (its inter-broker listener) and the registry's Kafka client.
BROKER_USER=kafka-broker
REGISTRY_KAFKA_USER=schema-registry
# The ClickHouse users of infra/clickhouse/users.d/sealtrail.xml, whose passwords it reads from
# CLICKHOUSE_<NAME>_PASSWORD; the administrator (sealtrail_admin) is defined by its SHA-256 only.
CLICKHOUSE_USERS="reader sink api export retention ingest monitor"
CLICKHOUSE_ADMIN=sealtrail_admin

fail() {
	echo "make-secrets: $*" >&2
	exit 1
}

random_hex() {
	od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'
}

# password NAME: the password NAME (48 hex digits, like the local stack's), made on first use.
password() {
	password_file=$STATE/$1.password
	if [ ! -s "$password_file" ]; then
		random_hex 24 >"$password_file.new"
		mv -f "$password_file.new" "$password_file"
	fi
	cat "$password_file"
}

# put OWNER MODE FILE: standard input into FILE, owned by OWNER, replaced whole.
put() {
	put_new=$3.new
	cat >"$put_new"
	chown "$1" "$put_new"
	chmod "$2" "$put_new"
	mv -f "$put_new" "$3"
}

# directory OWNER NAME: $SECRETS_DIR/NAME, the directory of one service, which only OWNER may
# enter.
directory() {
	mkdir -p "$SECRETS_DIR/$2"
	chown "$1" "$SECRETS_DIR/$2"
	chmod 700 "$SECRETS_DIR/$2"
}

# The CA: its key and certificate in $STATE, the certificate also in public/ for everyone.
make_ca() {
	# Before the per-service directories, the certificate was $SECRETS_DIR/ca.pem: kept, with
	# every certificate it signed.
	if [ ! -s "$STATE/ca.crt" ] && [ -s "$SECRETS_DIR/ca.pem" ]; then
		mv -f "$SECRETS_DIR/ca.pem" "$STATE/ca.crt"
	fi
	if [ ! -s "$STATE/ca.key" ] || [ ! -s "$STATE/ca.crt" ]; then
		echo "make-secrets: a new CA"
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$STATE/ca.key"
		openssl req -x509 -new -key "$STATE/ca.key" -sha256 -days 3650 -subj "/CN=sealtrail compose CA" \
			-config "$STATE/openssl.cnf" -extensions v3_ca -out "$STATE/ca.crt.new"
		mv -f "$STATE/ca.crt.new" "$STATE/ca.crt"
	fi
	mkdir -p "$SECRETS_DIR/public"
	chown 0 "$SECRETS_DIR/public"
	chmod 755 "$SECRETS_DIR/public"
	put 0 644 "$CA" <"$STATE/ca.crt"
}

# certificate NAME: the key ($STATE/NAME.key, PKCS#8) and certificate ($STATE/NAME.crt) of the
# compose service NAME, for NAME, localhost and 127.0.0.1.
certificate() {
	certificate_key=$STATE/$1.key
	certificate_file=$STATE/$1.crt
	if [ -s "$certificate_key" ] && [ -s "$certificate_file" ] &&
		openssl verify -CAfile "$STATE/ca.crt" "$certificate_file" >/dev/null 2>&1 &&
		openssl x509 -checkend 2592000 -noout -in "$certificate_file" >/dev/null; then
		return
	fi
	echo "make-secrets: a certificate for $1"
	if [ ! -s "$certificate_key" ]; then
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$certificate_key"
	fi
	cat >"$STATE/$1.ext" <<EOF
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:$1, DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
	openssl req -new -key "$certificate_key" -subj "/CN=$1" -config "$STATE/openssl.cnf" -out "$STATE/$1.csr"
	openssl x509 -req -in "$STATE/$1.csr" -CA "$STATE/ca.crt" -CAkey "$STATE/ca.key" -set_serial "0x$(random_hex 16)" \
		-days 825 -sha256 -extfile "$STATE/$1.ext" -extensions server -out "$certificate_file.new"
	mv -f "$certificate_file.new" "$certificate_file"
	rm -f "$STATE/$1.csr" "$STATE/$1.ext"
}

# clickhouse_password_file DIRECTORY USER: the password of the ClickHouse user USER for the
# sealtrail service of DIRECTORY, as DIRECTORY/clickhouse-USER.password.
clickhouse_password_file() {
	clickhouse_password=$(password "clickhouse.$2")
	printf '%s' "$clickhouse_password" | put "$SEALTRAIL_UID" 600 "$SECRETS_DIR/$1/clickhouse-$2.password"
}

scram_line() {
	printf '%s\n' "--add-scram" "SCRAM-SHA-512=[name=$1,password=$2]"
}

jaas() {
	printf 'org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";' "$1" "$2"
}

generate() {
	command -v openssl >/dev/null || fail "openssl is needed"
	mkdir -p "$SECRETS_DIR" "$STATE"
	chmod 755 "$SECRETS_DIR"
	chmod 700 "$STATE"
	cat >"$STATE/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = sealtrail
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
	make_ca
	for server in kafka schema-registry clickhouse sealtrail-api sealtrail-ingest; do
		certificate "$server"
	done

	broker_password=$(password "kafka.$BROKER_USER")
	registry_kafka_password=$(password "kafka.$REGISTRY_KAFKA_USER")

	# Kafka: its PEM keystore (key, then certificate), the SCRAM users its storage is formatted
	# with (kafka-storage arguments, one a line, read with @FILE: never on a command line), its
	# own password, and Java client properties for its healthcheck.
	directory "$KAFKA_UID" kafka
	cat "$STATE/kafka.key" "$STATE/kafka.crt" | put "$KAFKA_UID" 600 "$SECRETS_DIR/kafka/server.pem"
	printf '%s' "$broker_password" | put "$KAFKA_UID" 600 "$SECRETS_DIR/kafka/broker.password"
	scram_users=$STATE/scram-users
	scram_line "$BROKER_USER" "$broker_password" >"$scram_users"
	scram_line "$REGISTRY_KAFKA_USER" "$registry_kafka_password" >>"$scram_users"
	for identity in $IDENTITIES; do
		name=${identity%%:*}
		kafka_password=$(password "kafka.sealtrail-$name")
		scram_line "sealtrail-$name" "$kafka_password" >>"$scram_users"
	done
	put "$KAFKA_UID" 600 "$SECRETS_DIR/kafka/scram-users" <"$scram_users"
	rm -f "$scram_users"
	{
		echo "# The broker's own user, for its healthcheck (infra/docker/make-secrets.sh)."
		echo "security.protocol=SASL_SSL"
		echo "sasl.mechanism=SCRAM-SHA-512"
		echo "sasl.jaas.config=$(jaas "$BROKER_USER" "$broker_password")"
		echo "ssl.truststore.type=PEM"
		echo "ssl.truststore.location=$CA"
	} | put "$KAFKA_UID" 600 "$SECRETS_DIR/kafka/client.properties"

	# The Schema Registry: its PEM keystore, its Kafka client's password, and its users (Jetty's
	# PropertyFileLoginModule: `name: password,role`), each sealtrail identity reader or writer.
	directory "$REGISTRY_UID" schema-registry
	cat "$STATE/schema-registry.key" "$STATE/schema-registry.crt" |
		put "$REGISTRY_UID" 600 "$SECRETS_DIR/schema-registry/server.pem"
	printf '%s' "$registry_kafka_password" | put "$REGISTRY_UID" 600 "$SECRETS_DIR/schema-registry/kafka.password"
	registry_users=$STATE/registry-users
	echo "# The Schema Registry's users (infra/docker/make-secrets.sh): name: password,role" >"$registry_users"
	for identity in $IDENTITIES; do
		name=${identity%%:*}
		registry_password=$(password "registry.$name")
		echo "$name: $registry_password,${identity#*:}" >>"$registry_users"
	done
	put "$REGISTRY_UID" 600 "$SECRETS_DIR/schema-registry/users.properties" <"$registry_users"
	rm -f "$registry_users"
	cat <<EOF | put "$REGISTRY_UID" 600 "$SECRETS_DIR/schema-registry/jaas.conf"
SchemaRegistry {
  org.eclipse.jetty.security.jaas.spi.PropertyFileLoginModule required
  file="$SECRETS_DIR/schema-registry/users.properties";
};
EOF

	# ClickHouse: its certificate and key, each component's password (exported by
	# `make-secrets.sh clickhouse` for users.d/sealtrail.xml), and the administrator's SHA-256.
	directory "$CLICKHOUSE_UID" clickhouse
	put "$CLICKHOUSE_UID" 600 "$SECRETS_DIR/clickhouse/server.crt" <"$STATE/clickhouse.crt"
	put "$CLICKHOUSE_UID" 600 "$SECRETS_DIR/clickhouse/server.key" <"$STATE/clickhouse.key"
	for user in $CLICKHOUSE_USERS; do
		clickhouse_password=$(password "clickhouse.$user")
		printf '%s' "$clickhouse_password" | put "$CLICKHOUSE_UID" 600 "$SECRETS_DIR/clickhouse/$user.password"
	done
	admin_password=$(password "clickhouse.admin")
	admin_sha256=$(printf '%s' "$admin_password" | sha256sum | cut -d ' ' -f 1)
	cat <<EOF | put "$CLICKHOUSE_UID" 600 "$SECRETS_DIR/clickhouse/admin-user.xml"
<?xml version="1.0"?>
<!-- Written by infra/docker/make-secrets.sh: the operators' administrator (migrate, keys), by the
     SHA-256 of its password; the image's passwordless default user removed. -->
<clickhouse>
  <users>
    <default remove="remove"/>
    <$CLICKHOUSE_ADMIN>
      <password_sha256_hex>$admin_sha256</password_sha256_hex>
      <networks><ip>::/0</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
      <access_management>1</access_management>
    </$CLICKHOUSE_ADMIN>
  </users>
</clickhouse>
EOF

	directory "$GRAFANA_UID" grafana
	grafana_password=$(password "grafana.admin")
	printf '%s' "$grafana_password" | put "$GRAFANA_UID" 600 "$SECRETS_DIR/grafana/admin.password"

	# The sealtrail services, a directory each, named after its identity: the identity's client
	# properties (Kafka and the registry, the Confluent convention, as `sealtrail up` writes them),
	# its own ClickHouse user's password, the tenant-bound readers' password for the components
	# that use them (the API's queries, the export processor's filters), and the API's TLS.
	for identity in $IDENTITIES; do
		name=${identity%%:*}
		kafka_password=$(password "kafka.sealtrail-$name")
		registry_password=$(password "registry.$name")
		directory "$SEALTRAIL_UID" "$name"
		{
			echo "# $name's client properties (infra/docker/make-secrets.sh): Kafka over TLS with SCRAM, and the registry."
			echo "security.protocol=SASL_SSL"
			echo "ssl.ca.location=$CA"
			echo "sasl.mechanism=SCRAM-SHA-512"
			echo "sasl.username=sealtrail-$name"
			echo "sasl.password=$kafka_password"
			echo "basic.auth.credentials.source=USER_INFO"
			echo "basic.auth.user.info=$name:$registry_password"
		} | put "$SEALTRAIL_UID" 600 "$SECRETS_DIR/$name/$name.properties"
		case " $CLICKHOUSE_USERS " in
		*" $name "*) clickhouse_password_file "$name" "$name" ;;
		esac
	done
	for name in api export; do
		clickhouse_password_file "$name" reader
	done
	# The ingest edge runs with the API's directory (its Kafka and registry identity), and logs in
	# to ClickHouse as its own user, which reads API keys only.
	clickhouse_password_file api ingest
	put "$SEALTRAIL_UID" 600 "$SECRETS_DIR/api/api.crt" <"$STATE/sealtrail-api.crt"
	put "$SEALTRAIL_UID" 600 "$SECRETS_DIR/api/api.key" <"$STATE/sealtrail-api.key"
	# The ingest edge runs as the API's identity, with a certificate of its own name.
	put "$SEALTRAIL_UID" 600 "$SECRETS_DIR/api/ingest.crt" <"$STATE/sealtrail-ingest.crt"
	put "$SEALTRAIL_UID" 600 "$SECRETS_DIR/api/ingest.key" <"$STATE/sealtrail-ingest.key"
	# ClickHouse's administrator, apart from the operator's Kafka login: only migrations (and the
	# operators' API key commands) need it.
	directory "$SEALTRAIL_UID" admin
	clickhouse_password_file admin admin
	# What the layout before these directories left: every identity's files in one directory, and
	# the CA's certificate at the top (moved to .init/ by make_ca).
	rm -rf "$SECRETS_DIR/sealtrail"

	# The key volume, for `sealtrail keys init` as the sealtrail user (it is created owned by
	# root); earlier runs of that command as root left root's files in it.
	if [ -n "${SEALTRAIL_KEYS_VOLUME:-}" ]; then
		[ -d "$SEALTRAIL_KEYS_VOLUME" ] || fail "SEALTRAIL_KEYS_VOLUME: no directory $SEALTRAIL_KEYS_VOLUME"
		chown -R "$SEALTRAIL_UID" "$SEALTRAIL_KEYS_VOLUME"
		chmod 700 "$SEALTRAIL_KEYS_VOLUME"
	fi
	echo "make-secrets: $SECRETS_DIR is ready"
}

# Kafka's storage is formatted once, with the SCRAM users (only kafka-storage format can create
# them before anything may log in), from the same KAFKA_* variables the image turns into
# server.properties; then the image's own launcher starts the broker, which finds the storage
# already formatted.
run_kafka() {
	kafka_dir=$SECRETS_DIR/kafka
	broker_password=$(cat "$kafka_dir/broker.password")
	[ -n "$broker_password" ] || fail "$kafka_dir/broker.password is empty"
	# The login of the CLIENT listener, which is also the inter-broker one: with the broker's
	# own credentials.
	KAFKA_LISTENER_NAME_CLIENT_SCRAM___SHA___512_SASL_JAAS_CONFIG=$(jaas "$BROKER_USER" "$broker_password")
	export KAFKA_LISTENER_NAME_CLIENT_SCRAM___SHA___512_SASL_JAAS_CONFIG
	unset broker_password
	if [ ! -f "${KAFKA_LOG_DIRS:?}/meta.properties" ]; then
		format_config=$(mktemp)
		env | while IFS= read -r line; do
			case $line in
			KAFKA_*=*) ;;
			*) continue ;;
			esac
			variable=${line%%=*}
			case $variable in
			# Not properties (the image skips them too), or secrets the format does not need.
			KAFKA_VERSION | KAFKA_HEAP_OPTS | KAFKA_LOG4J_OPTS | KAFKA_OPTS | KAFKA_JMX_OPTS | \
				KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_GC_LOG_OPTS | KAFKA_LOG4J_ROOT_LOGLEVEL | \
				KAFKA_LOG4J_LOGGERS | KAFKA_TOOLS_LOG4J_LOGLEVEL | KAFKA_JMX_HOSTNAME | *_SASL_JAAS_CONFIG)
				continue
				;;
			esac
			property=$(printf '%s' "${variable#KAFKA_}" | tr 'A-Z_' 'a-z.' | sed 's/\.\.\./-/g; s/\.\./_/g')
			printf '%s=%s\n' "$property" "${line#*=}"
		done >"$format_config"
		/opt/kafka/bin/kafka-storage.sh format --cluster-id "${CLUSTER_ID:?}" --config "$format_config" \
			"@$kafka_dir/scram-users"
		rm -f "$format_config"
	fi
	exec /etc/kafka/docker/run "$@"
}

run_schema_registry() {
	registry_password=$(cat "$SECRETS_DIR/schema-registry/kafka.password")
	[ -n "$registry_password" ] || fail "$SECRETS_DIR/schema-registry/kafka.password is empty"
	SCHEMA_REGISTRY_KAFKASTORE_SASL_JAAS_CONFIG=$(jaas "$REGISTRY_KAFKA_USER" "$registry_password")
	export SCHEMA_REGISTRY_KAFKASTORE_SASL_JAAS_CONFIG
	unset registry_password
	exec /etc/confluent/docker/run "$@"
}

# As root, before the image's entrypoint drops to the clickhouse user.
run_clickhouse() {
	clickhouse_dir=$SECRETS_DIR/clickhouse
	for user in $CLICKHOUSE_USERS; do
		clickhouse_password=$(cat "$clickhouse_dir/$user.password")
		[ -n "$clickhouse_password" ] || fail "$clickhouse_dir/$user.password is empty"
		export "CLICKHOUSE_$(printf '%s' "$user" | tr 'a-z' 'A-Z')_PASSWORD=$clickhouse_password"
	done
	unset clickhouse_password
	cp -p "$clickhouse_dir/admin-user.xml" /etc/clickhouse-server/users.d/sealtrail-admin.xml
	exec /entrypoint.sh "$@"
}

case ${1:-generate} in
generate) generate ;;
kafka)
	shift
	run_kafka "$@"
	;;
schema-registry)
	shift
	run_schema_registry "$@"
	;;
clickhouse)
	shift
	run_clickhouse "$@"
	;;
*) fail "usage: make-secrets.sh [generate | kafka | schema-registry | clickhouse [ARGS...]]" ;;
esac
