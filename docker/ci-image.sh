#!/usr/bin/env bash
# Builds the container image around the release binary CI already built, and checks it the way
# an EVE node runs it. `.ci/run` calls it after `cargo build --release --locked`; run it as root:
#
#   docker/ci-image.sh [BINARY]        (default: target/release/lps-bridge)
#
# Everything it makes is its own and is removed on exit, pass or fail: a Docker engine on its
# own socket, data root and exec root (no bridge, no iptables rules), Debian base images made
# locally with debootstrap (no registry needed), the image, its containers and volume. Containers
# run with --network host on free loopback ports. Only the debootstrap tarballs are kept, under
# LPS_DOCKER_CACHE (default /var/cache/lps-bridge-ci), so the next run skips that step.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BIN=${1:-target/release/lps-bridge}
CACHE=${LPS_DOCKER_CACHE:-/var/cache/lps-bridge-ci}
SUITE=bookworm
T0=$SECONDS

say() { printf '[ci-image %3ds] %s\n' $((SECONDS - T0)) "$*"; }
die() { say "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs and starts a Docker engine)"
[ -x "$BIN" ] || die "$BIN not found: build it first with cargo build --release --locked"

# ---- the engine and debootstrap ----------------------------------------------------------------
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v curl >/dev/null || need+=(curl)
command -v ss >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The client that comes with the engine (another one on PATH may be newer than the engine).
DOCKER_CLI=/usr/bin/docker
[ -x "$DOCKER_CLI" ] || DOCKER_CLI=$(command -v docker)

# Short: the engine's sockets live under it (a Unix socket path has at most 107 bytes).
W=$(mktemp -d /tmp/lpsci.XXXXXX)
ID=${W##*.}
ID=${ID,,}
export DOCKER_HOST=unix://$W/docker.sock
dk() { "$DOCKER_CLI" "$@"; }
IMAGE=lps-bridge-ci:$ID
RUN_BASE=lps-bridge-ci-run:$ID
BUILD_BASE=lps-bridge-ci-build:$ID
VOLUME=lps-bridge-ci-$ID
CONTAINER=lps-bridge-ci-$ID
DOCKERD_PID=
# The engine makes these whatever its roots are; removed on exit if they were not there before.
RUN_DIRS=()
for d in /run/docker /run/containerd; do [ -e "$d" ] || RUN_DIRS+=("$d"); done

cleanup() {
  local rc=$? t=$SECONDS
  set +e
  if [ -n "$DOCKERD_PID" ]; then
    dk rm -f "$CONTAINER" >/dev/null 2>&1
    dk volume rm -f "$VOLUME" >/dev/null 2>&1
    dk rmi -f "$IMAGE" "$RUN_BASE" "$BUILD_BASE" >/dev/null 2>&1
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$DOCKERD_PID" 2>/dev/null
    wait "$DOCKERD_PID" 2>/dev/null
  fi
  # Anything the engine left mounted under its roots, deepest first.
  awk -v w="$W" '$2 ~ "^" w {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$W"
  for d in "${RUN_DIRS[@]}"; do
    find "$d" -depth -type d -empty -delete 2>/dev/null
  done
  say "removed the engine, images, containers and volume in $((SECONDS - t)) s"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting dockerd (data, exec root and socket under $W)"
echo '{}' >"$W/daemon.json"
dockerd --config-file "$W/daemon.json" --host "$DOCKER_HOST" --data-root "$W/data" \
  --exec-root "$W/exec" --pidfile "$W/dockerd.pid" --bridge=none --iptables=false \
  --ip-masq=false --ip-forward=false >"$W/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 300); do
  dk info >/dev/null 2>&1 && break
  kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$W/dockerd.log"; die "dockerd exited"; }
  sleep 0.2
done
dk info >/dev/null 2>&1 || { tail -20 "$W/dockerd.log"; die "dockerd did not answer within 60 s"; }
say "engine $(dk version --format '{{.Server.Version}}'), storage $(dk info --format '{{.Driver}}')"

# ---- base images (debootstrap, cached) ---------------------------------------------------------
# The Debian mirror this machine's apt uses (one-line or deb822 format).
mirror() {
  local m=""
  [ -f /etc/apt/sources.list ] &&
    m=$(awk -v s="$SUITE" '$1 == "deb" && $3 == s {print $2; exit}' /etc/apt/sources.list)
  [ -z "$m" ] && [ -f /etc/apt/sources.list.d/debian.sources ] &&
    m=$(awk '$1 == "URIs:" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  echo "${m:-http://deb.debian.org/debian}"
}

# What a container never reads: apt's package lists and downloaded .debs, docs, man pages,
# translations (what makes debian:bookworm-slim slim).
trim() {
  rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/usr/share/doc/* \
    "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/usr/share/locale/* "$1"/var/log/*
}

mkdir -p "$CACHE"
if [ ! -s "$CACHE/$SUITE-build.tar" ] || [ ! -s "$CACHE/$SUITE-run.tar" ]; then
  m=$(mirror)
  say "debootstrap --variant=minbase $SUITE from $m"
  root="$W/rootfs"
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$root" "$m" >"$W/debootstrap.log" 2>&1 ||
    { tail -20 "$W/debootstrap.log"; die "debootstrap failed"; }
  trim "$root"
  # The build stage: minbase with the CA bundle the image copies.
  tar -C "$root" -cf "$CACHE/$SUITE-build.tar.tmp" . && mv "$CACHE/$SUITE-build.tar.tmp" "$CACHE/$SUITE-build.tar"
  # The runtime base: minbase without OpenSSL (only the bundle is needed, and it is copied).
  chroot "$root" dpkg --purge ca-certificates openssl libssl3 >>"$W/debootstrap.log" 2>&1 ||
    { tail -20 "$W/debootstrap.log"; die "could not remove OpenSSL from the runtime base"; }
  trim "$root"
  tar -C "$root" -cf "$CACHE/$SUITE-run.tar.tmp" . && mv "$CACHE/$SUITE-run.tar.tmp" "$CACHE/$SUITE-run.tar"
  rm -rf "$root"
else
  say "base tarballs from $CACHE"
fi
PATH_ENV='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
dk import --change "$PATH_ENV" "$CACHE/$SUITE-build.tar" "$BUILD_BASE" >/dev/null
dk import --change "$PATH_ENV" "$CACHE/$SUITE-run.tar" "$RUN_BASE" >/dev/null
say "base images $BUILD_BASE, $RUN_BASE"

# ---- the image -----------------------------------------------------------------------------------
# The legacy builder (the one that works offline) sends the whole context: a copy of the tree
# without target/ and .git, plus the binary where the Dockerfile looks for it. Symbols are
# stripped, as the Dockerfile does when it compiles.
ctx="$W/context"
mkdir "$ctx"
tar -C "$REPO" --exclude=./target --exclude=./.git --exclude=./data -cf - . | tar -C "$ctx" -xf -
install -m 0755 "$BIN" "$ctx/docker/prebuilt/lps-bridge"
strip "$ctx/docker/prebuilt/lps-bridge"
BIN_BYTES=$(stat -c %s "$ctx/docker/prebuilt/lps-bridge")
say "building $IMAGE (binary $(stat -c %s "$BIN") bytes, stripped $BIN_BYTES)"
DOCKER_BUILDKIT=0 dk build --network host -f "$ctx/docker/Dockerfile" \
  --build-arg BUILD_BASE="$BUILD_BASE" --build-arg RUN_BASE="$RUN_BASE" --build-arg BINARY=prebuilt \
  -t "$IMAGE" "$ctx" >"$W/build.log" 2>&1 || { tail -30 "$W/build.log"; die "docker build failed"; }
rm -rf "$ctx"

# ---- checks ------------------------------------------------------------------------------------
RESULTS=()
FAILED=0
pass() { RESULTS+=("PASS  $*"); say "PASS $*"; }
fail() { RESULTS+=("FAIL  $*"); say "FAIL $*"; FAILED=1; }
check() { # check "what" command...
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

IMAGE_BYTES=$(dk image inspect -f '{{.Size}}' "$IMAGE")
say "image size $((IMAGE_BYTES / 1000000)) MB ($IMAGE_BYTES bytes); layers:"
dk history --format '  {{.Size}}\t{{.CreatedBy}}' "$IMAGE" | cut -c1-110
check "image under 100 MB ($((IMAGE_BYTES / 1000000)) MB)" [ "$IMAGE_BYTES" -lt 100000000 ]
check "binary under 20 MB ($((BIN_BYTES / 1000000)) MB)" [ "$BIN_BYTES" -lt 20000000 ]
check "image runs as 10001:10001" [ "$(dk image inspect -f '{{.Config.User}}' "$IMAGE")" = 10001:10001 ]

SERVER_TOKEN=ci-server-$ID-secret
OPERATOR_TOKEN=ci-operator-$ID-secret
TOKENS=(-e LPS_BRIDGE_SERVER_TOKEN="$SERVER_TOKEN" -e LPS_BRIDGE_OPERATOR_TOKEN="$OPERATOR_TOKEN")

# check-config on the image's own config: valid with the tokens from the environment; refused
# without the operator token (the operator API listens on all interfaces there).
out=$(dk run --rm --network none "${TOKENS[@]}" "$IMAGE" check-config /etc/lps-bridge/lps-bridge.toml 2>&1) && rc=0 || rc=$?
check "check-config inside: the image's config is valid with both tokens ($out)" [ "$rc" = 0 ]
out=$(dk run --rm --network none "$IMAGE" check-config /etc/lps-bridge/lps-bridge.toml 2>&1) && rc=0 || rc=$?
refused=no
[ "$rc" = 64 ] && [[ "$out" == *operator.token* ]] && refused=yes
check "check-config inside: refused without LPS_BRIDGE_OPERATOR_TOKEN (exit $rc, names operator.token)" [ "$refused" = yes ]

# `run` without the operator token stops at once, before binding anything, and says why.
out=$(dk run --rm --network none -e LPS_BRIDGE_SERVER_TOKEN="$SERVER_TOKEN" "$IMAGE" 2>&1) && rc=0 || rc=$?
refused=no
[ "$rc" = 64 ] && [[ "$out" == *operator.token* ]] && refused=yes
check "run without LPS_BRIDGE_OPERATOR_TOKEN exits 64 naming operator.token (exit $rc)" [ "$refused" = yes ]

# Free loopback ports for --network host: the image's config with only the addresses changed.
declare -A taken=()
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    [ -z "${taken[$p]:-}" ] && ! ss -Htan "( sport = :$p )" | grep -q . && break
  done
  taken[$p]=1
  echo "$p"
}
P_LPS=$(free_port)
P_MQTT=$(free_port)
P_OP=$(free_port)
sed -e "s/\"0.0.0.0:8888\"/\"127.0.0.1:$P_LPS\"/" -e "s/\"0.0.0.0:1883\"/\"127.0.0.1:$P_MQTT\"/" \
  -e "s/\"0.0.0.0:8080\"/\"127.0.0.1:$P_OP\"/" docker/lps-bridge.toml >"$W/ci.toml"
chmod 0644 "$W/ci.toml"
grep -q "127.0.0.1:$P_OP" "$W/ci.toml" || die "docker/lps-bridge.toml no longer listens on 0.0.0.0:8080"
LPS=http://127.0.0.1:$P_LPS
OP=http://127.0.0.1:$P_OP
say "ports: LPS $P_LPS, MQTT $P_MQTT, operator $P_OP"

dk volume create "$VOLUME" >/dev/null
run_container() {
  dk run -d --name "$CONTAINER" --network host "${TOKENS[@]}" \
    -v "$VOLUME:/var/lib/lps-bridge" -v "$W/ci.toml:/etc/lps-bridge/lps-bridge.toml:ro" \
    "$IMAGE" >/dev/null
}
wait_ready() {
  for _ in $(seq 300); do
    curl -sf "$OP/readyz" >/dev/null 2>&1 && return 0
    [ "$(dk inspect -f '{{.State.Running}}' "$CONTAINER")" = true ] || break
    sleep 0.2
  done
  dk logs "$CONTAINER" 2>&1 | tail -20
  return 1
}
# An MQTT 3.1.1 CONNECT (client id "ci", clean session) answered by a CONNACK that accepts it.
mqtt_connack() {
  local reply
  exec 3<>"/dev/tcp/127.0.0.1/$P_MQTT" || return 1
  printf '\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02ci' >&3
  reply=$(timeout 5 head -c 4 <&3 | od -An -tx1 | tr -d ' \n')
  exec 3>&-
  [ "$reply" = 20020000 ]
}
http_code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
# POST to the operator API with the token; prints the reply.
op_post() { curl -s -H "Authorization: Bearer $OPERATOR_TOKEN" -H 'Content-Type: application/json' -d "$2" "$OP$1"; }
command_id() { sed -n 's/.*"command":{"id":\([0-9]*\).*/\1/p'; }
# What EVE gets: the profile (GET local_profile) and the open app commands (POST appinfo with an
# empty report); protobuf, so looked for as bytes.
eve_profile_has() { curl -s "$LPS/api/v1/local_profile" | grep -aq -- "$1"; }
eve_appinfo_has() {
  curl -s -X POST -H 'Content-Type: application/x-proto-binary' --data-binary '' "$LPS/api/v1/appinfo" | grep -aq -- "$1"
}
eve_devinfo_open() { # 200 = a device command is open (204 = none)
  [ "$(http_code -X POST -H 'Content-Type: application/x-proto-binary' --data-binary '' "$LPS/api/v1/devinfo")" = 200 ]
}
command_logged() {
  local id
  for id in "$@"; do curl -s "$OP/api/commands/$id" | grep -q "\"id\":$id" || return 1; done
}

run_container
if ! wait_ready; then
  fail "container ready"
else
  pass "container ready (/readyz)"
  pid=$(dk inspect -f '{{.State.Pid}}' "$CONTAINER")
  check "the gateway process runs as uid 10001 (not root)" [ "$(ps -o uid= -p "$pid" | tr -d ' ')" = 10001 ]
  check "LPS port answers on loopback" [ "$(http_code "$LPS/api/v1/local_profile")" = 200 ]
  check "MQTT port answers on loopback (CONNACK accepted)" mqtt_connack
  check "operator port answers on loopback" [ "$(http_code "$OP/healthz")" = 200 ]
  check "LPS_BRIDGE_SERVER_TOKEN is what EVE gets" eve_profile_has "$SERVER_TOKEN"
  check "LPS_BRIDGE_OPERATOR_TOKEN: a mutation without it is refused (401)" \
    [ "$(http_code -H 'Content-Type: application/json' -d '{"profile":"x"}' "$OP/api/profile")" = 401 ]
  check "LPS_BRIDGE_OPERATOR_TOKEN: a wrong token is refused (401)" \
    [ "$(http_code -H 'Authorization: Bearer wrong' -H 'Content-Type: application/json' -d '{"profile":"x"}' "$OP/api/profile")" = 401 ]

  # Accepted, then docker stop (SIGTERM); the same container started again.
  r1=$(op_post /api/profile '{"profile":"ci-night-shift"}')
  r2=$(op_post /api/apps/ci-vision '{"command":"restart"}')
  id2=$(command_id <<<"$r2")
  accepted=no
  [ -n "$id2" ] && [[ "$r1" == *'"status":"ok"'* ]] && accepted=yes
  check "a profile and an app command accepted with the operator token" [ "$accepted" = yes ]
  t=$(date +%s%N)
  dk stop -t 30 "$CONTAINER" >/dev/null
  took=$((($(date +%s%N) - t) / 1000000))
  check "docker stop returns well within its 30 s grace period (${took} ms)" [ "$took" -le 10000 ]
  check "stopped cleanly (exit code $(dk inspect -f '{{.State.ExitCode}}' "$CONTAINER"))" \
    [ "$(dk inspect -f '{{.State.ExitCode}}' "$CONTAINER")" = 0 ]
  dk start "$CONTAINER" >/dev/null
  if wait_ready; then
    check "after docker stop + start: EVE still gets the profile" eve_profile_has ci-night-shift
    check "after docker stop + start: EVE still gets the app command" eve_appinfo_has ci-vision
    check "after docker stop + start: the command is in the log" command_logged "$id2"
  else
    fail "ready again after docker stop + start"
  fi

  # Accepted, then docker kill (SIGKILL); a new container on the same volume.
  r3=$(op_post /api/profile '{"profile":"ci-weekend"}')
  r4=$(op_post /api/device '{"command":"reboot"}')
  id4=$(command_id <<<"$r4")
  accepted=no
  [ -n "$id4" ] && [[ "$r3" == *'"status":"ok"'* ]] && accepted=yes
  check "a profile and a device command accepted before docker kill" [ "$accepted" = yes ]
  dk kill "$CONTAINER" >/dev/null
  dk wait "$CONTAINER" >/dev/null
  check "killed (exit code $(dk inspect -f '{{.State.ExitCode}}' "$CONTAINER"))" \
    [ "$(dk inspect -f '{{.State.ExitCode}}' "$CONTAINER")" = 137 ]
  dk rm "$CONTAINER" >/dev/null
  run_container
  if wait_ready; then
    check "after docker kill, a new container on the volume: EVE gets the profile" eve_profile_has ci-weekend
    check "after docker kill, a new container on the volume: EVE gets the device command" eve_devinfo_open
    check "after docker kill, a new container on the volume: both commands are in the log" \
      command_logged "$id4" "$id2"
  else
    fail "ready again after docker kill"
  fi
  dk stop -t 30 "$CONTAINER" >/dev/null
fi

# ---- summary -----------------------------------------------------------------------------------
echo
echo "docker/ci-image.sh: image $((IMAGE_BYTES / 1000000)) MB, binary $((BIN_BYTES / 1000000)) MB, $((SECONDS - T0)) s"
printf '  %s\n' "${RESULTS[@]}"
if [ "$FAILED" = 0 ]; then
  echo "docker/ci-image.sh: PASS (${#RESULTS[@]} checks)"
else
  echo "docker/ci-image.sh: FAIL (see the FAIL lines above)"
  exit 1
fi
