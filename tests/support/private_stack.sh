# Sourced by shell tests that need a Kafka broker and PostgreSQL servers of
# their own (stopped, paused or reformatted by the test): scripts/stack in a
# fresh folder on free loopback ports. Sets SHADOWPIPE_STACK_DIR and the
# port variables, and `stack` to the script; the caller runs "$stack" up.
private_stack_dir=$(mktemp -d "/tmp/shadowpipe-${1:-private}.XXXXXX")
chmod 755 "$private_stack_dir"
read -r _kafka _controller _primary _shadow <<<"$(python3 -c 'import socket
s=[socket.socket() for _ in range(4)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')"
export SHADOWPIPE_STACK_DIR=$private_stack_dir SHADOWPIPE_KAFKA_PORT=$_kafka SHADOWPIPE_KAFKA_CONTROLLER_PORT=$_controller
export SHADOWPIPE_PRIMARY_PORT=$_primary SHADOWPIPE_SHADOW_PORT=$_shadow SHADOWPIPE_KAFKA_HEAP=384m
stack="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/stack"
