#!/usr/bin/env bash
# VectorPipe post-install for AWS ParallelCluster 3 (HeadNode OnNodeConfigured and
# OnNodeUpdated; queue OnNodeConfigured). Idempotent: run it again and it changes
# only what drifted, restarting only what it changed.
#
# On every node: creates the unprivileged Slurm user the bridge submits as
# (--user, same UID/GID everywhere so jobs run as it on compute nodes).
#
# On the head node, in addition:
#   1. JWT: a 32-byte HS256 key at /var/spool/slurm.state/jwt_hs256.key (0600,
#      owned by slurm; kept across runs: replacing it would revoke every token),
#      and AuthAltTypes=auth/jwt + AuthAltParameters=jwt_key=... in an include
#      file that slurm.conf (and slurmdbd.conf when accounting is on) include
#      once; slurmctld/slurmdbd are restarted only when that changed.
#   2. slurmrestd: a `slurmrestd` system user and a systemd unit running
#      `slurmrestd -a rest_auth/jwt` with SLURM_JWT=daemon on a UNIX SOCKET
#      only (/run/slurmrestd/slurmrestd.socket, 0700): no TCP listener at all.
#   3. TLS: slurmrestd has no TLS of its own here, so a dedicated nginx instance
#      (its own config and unit, as the same unprivileged user; the distro's
#      nginx.service stays disabled) terminates TLS 1.2/1.3 on --port (8082)
#      and proxies to the socket. It answers only --allowed-cidr (default: the
#      VPC's CIDRs) and loopback; everyone else gets 403, plain HTTP gets 400.
#      Certificate: a private CA made on first run (/etc/vectorpipe/tls), a
#      server certificate for the head node's IP and names (+ --tls-san),
#      renewed when it has under 30 days left.
#   4. Token: a systemd timer runs `vectorpipe-slurmrestd rotate` (this script,
#      installed to /usr/local/sbin) every lifespan/2: `scontrol token
#      username=<user> lifespan=<s>` and `aws secretsmanager put-secret-value`
#      of {"token", "ca_crt", "user", "endpoint", "expires"} into --secret-id.
#      The token never appears on a command line or in a log.
#
# Usage (arguments as in cluster-config.yaml):
#   post-install.sh [install] --user NAME [--uid N] [--secret-id ARN|NAME]
#                   [--allowed-cidr CIDR]... [--port N] [--lifespan SECONDS]
#                   [--tls-san NAME|IP]... [--region R] [--node-type T]
#                   [--dest-root DIR]
#   post-install.sh rotate          # what the timer runs
#
# --dest-root DIR writes every file the head node would get under DIR (as
# DIR/etc/..., DIR/opt/slurm/etc/...) and does nothing else: no packages, users,
# chown, systemctl, instance metadata or AWS. It is how the tests and a
# reviewer see exactly what would be installed.
set -euo pipefail

readonly SCRIPT_PATH="${BASH_SOURCE[0]}"

# --- defaults (SLURM_*, VP_ENV_FILE and VP_RUN_DIR may be overridden from the
# environment, for non-ParallelCluster hosts and the tests) ---------------------------
SLURM_PREFIX="${SLURM_PREFIX:-/opt/slurm}"
SLURM_ETC="${SLURM_ETC:-$SLURM_PREFIX/etc}"
SLURM_STATE_DIR="${SLURM_STATE_DIR:-/var/spool/slurm.state}"
SLURM_DAEMON_USER="${SLURM_DAEMON_USER:-slurm}"
JWT_KEY="$SLURM_STATE_DIR/jwt_hs256.key"
JWT_INCLUDE="$SLURM_ETC/vectorpipe_jwt.conf"
VP_ETC=/etc/vectorpipe
TLS_DIR="$VP_ETC/tls"
ENV_FILE="${VP_ENV_FILE:-$VP_ETC/slurmrestd.env}"
UNIT_DIR=/etc/systemd/system
INSTALLED_SCRIPT=/usr/local/sbin/vectorpipe-slurmrestd
REST_USER=slurmrestd
SOCKET_DIR=/run/slurmrestd
SOCKET="$SOCKET_DIR/slurmrestd.socket"
TLS_UNIT=vectorpipe-slurmrestd-tls
TLS_STATE=/var/lib/$TLS_UNIT
TLS_RUN=/run/$TLS_UNIT
LOG_DIR=/var/log/vectorpipe
CFNCONFIG=/etc/parallelcluster/cfnconfig
RUN_BASE="${VP_RUN_DIR:-/run}"

TOKEN_USER=""
TOKEN_UID=2001
SECRET_ID=""
ALLOWED_CIDRS=()
TLS_SANS=()
PORT=8082
LIFESPAN=86400
REGION=""
NODE_TYPE=""
DEST_ROOT=""
CHANGED=()
ROTATE_WORK=""

log() { printf '[vectorpipe post-install] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
live() { [ -z "$DEST_ROOT" ]; }
# The path a file is written to: itself, or under --dest-root.
dest() { printf '%s%s' "$DEST_ROOT" "$1"; }
changed() { local f; for f in "${CHANGED[@]}"; do [ "$f" = "$1" ] && return 0; done; return 1; }

usage() { sed -n '2,/^set -euo/p' "$SCRIPT_PATH" | sed '$d; s/^# \{0,1\}//'; }

# --- argument checks: everything below lands in config files -------------------------
valid_cidr() {
  [[ "$1" =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})/([0-9]{1,2})$ ]] || return 1
  local i
  for i in 1 2 3 4; do [ "${BASH_REMATCH[$i]}" -le 255 ] || return 1; done
  [ "${BASH_REMATCH[5]}" -le 32 ]
}
valid_user() { [[ "$1" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]]; }
# in_range VALUE MIN MAX: a plain decimal number within [MIN, MAX].
in_range() {
  [[ "$1" =~ ^[0-9]{1,10}$ ]] || return 1
  [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]
}
valid_san() { [[ "$1" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$ ]]; }
valid_secret_id() { [[ "$1" =~ ^[A-Za-z0-9/_+=.@:-]{1,2048}$ ]]; }
valid_ipv4() { valid_cidr "$1/32"; }

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --user) TOKEN_USER="${2:?--user needs a value}"; shift ;;
      --uid) TOKEN_UID="${2:?--uid needs a value}"; shift ;;
      --secret-id) SECRET_ID="${2:?--secret-id needs a value}"; shift ;;
      --allowed-cidr) ALLOWED_CIDRS+=("${2:?--allowed-cidr needs a value}"); shift ;;
      --tls-san) TLS_SANS+=("${2:?--tls-san needs a value}"); shift ;;
      --port) PORT="${2:?--port needs a value}"; shift ;;
      --lifespan) LIFESPAN="${2:?--lifespan needs a value}"; shift ;;
      --region) REGION="${2:?--region needs a value}"; shift ;;
      --node-type) NODE_TYPE="${2:?--node-type needs a value}"; shift ;;
      --dest-root) DEST_ROOT="${2:?--dest-root needs a value}"; shift ;;
      -h | --help) usage; exit 0 ;;
      *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
  done
  [ -n "$TOKEN_USER" ] || die "--user is required"
  valid_user "$TOKEN_USER" || die "--user '$TOKEN_USER' is not a valid user name"
  in_range "$TOKEN_UID" 1000 4294967294 || die "--uid must be a number >= 1000"
  in_range "$PORT" 1024 65535 || die "--port must be 1024-65535"
  in_range "$LIFESPAN" 600 31536000 || die "--lifespan must be 600 s to 1 year"
  [ -z "$SECRET_ID" ] || valid_secret_id "$SECRET_ID" || die "--secret-id has unexpected characters"
  [ -z "$REGION" ] || [[ "$REGION" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || die "--region '$REGION' is not a region"
  local c
  for c in ${ALLOWED_CIDRS[@]+"${ALLOWED_CIDRS[@]}"}; do
    valid_cidr "$c" || die "--allowed-cidr '$c' is not an IPv4 CIDR"
  done
  for c in ${TLS_SANS[@]+"${TLS_SANS[@]}"}; do
    valid_san "$c" || die "--tls-san '$c' is not a DNS name or IPv4 address"
  done
  if [ -n "$DEST_ROOT" ]; then
    mkdir -p "$DEST_ROOT"
    DEST_ROOT="$(cd "$DEST_ROOT" && pwd)"
  fi
}

# --- node facts -----------------------------------------------------------------------
load_cfnconfig() {
  if live && [ -r "$CFNCONFIG" ]; then
    local cfn_node_type="" cfn_region=""
    # shellcheck source=/dev/null
    . "$CFNCONFIG"
    NODE_TYPE="${NODE_TYPE:-$cfn_node_type}"
    REGION="${REGION:-$cfn_region}"
  fi
  NODE_TYPE="${NODE_TYPE:-${PCLUSTER_NODE_TYPE:-HeadNode}}"
}

IMDS_TOKEN=""
imds() {
  if [ -z "$IMDS_TOKEN" ]; then
    IMDS_TOKEN="$(curl -fsS -m 5 -X PUT http://169.254.169.254/latest/api/token \
      -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')"
  fi
  curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "http://169.254.169.254/latest/meta-data/$1"
}

PRIVATE_IP=""
HOST_FQDN=""
HOST_SHORT=""
discover_head_node() {
  if live; then
    PRIVATE_IP="$(imds local-ipv4 || hostname -I | awk '{print $1}')"
    HOST_FQDN="$(hostname -f)"
    HOST_SHORT="$(hostname -s)"
    [ -n "$REGION" ] || REGION="$(imds placement/region)"
    if [ ${#ALLOWED_CIDRS[@]} -eq 0 ]; then
      local mac cidr
      mac="$(imds mac)"
      while IFS= read -r cidr; do
        [ -n "$cidr" ] && ALLOWED_CIDRS+=("$cidr")
      done < <(imds "network/interfaces/macs/$mac/vpc-ipv4-cidr-blocks"; echo)
    fi
  else
    PRIVATE_IP="${VP_RENDER_IP:-10.0.0.10}"
    HOST_FQDN="${VP_RENDER_FQDN:-ip-10-0-0-10.ec2.internal}"
    HOST_SHORT="${HOST_FQDN%%.*}"
    REGION="${REGION:-us-east-1}"
  fi
  valid_ipv4 "$PRIVATE_IP" || die "could not find the head node's private IPv4 address"
  [ ${#ALLOWED_CIDRS[@]} -gt 0 ] || die "no --allowed-cidr given and the VPC CIDR could not be read"
  [ -n "$SECRET_ID" ] || die "--secret-id is required on the head node"
  [ -n "$REGION" ] || die "no --region given and none could be discovered"
}

# --- idempotent file writes -----------------------------------------------------------
# put_file PATH MODE OWNER:GROUP  (content on stdin) -- rewrites only on a difference.
# Feed it with `< <(render_x)`, never a pipe: a pipe would run it in a subshell
# and lose its CHANGED record (and with it the restarts that depend on it).
# Feed it with `< <(render_x)`, never a pipe: a pipe would run it in a subshell
# and lose its record in CHANGED (and so the restarts that depend on it).
put_file() {
  local path="$1" mode="$2" owner="$3" target tmp
  target="$(dest "$path")"
  mkdir -p "$(dirname "$target")"
  tmp="$(mktemp "$target.XXXXXX")"
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if [ -f "$target" ] && cmp -s "$tmp" "$target"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$target"
    CHANGED+=("$path")
    log "wrote $path"
  fi
  chmod "$mode" "$target"
  if live; then chown "$owner" "$target"; fi
}

# ensure_include CONF INCLUDED -- appends "include INCLUDED" to CONF once.
ensure_include() {
  local conf="$1" inc="$2" target
  target="$(dest "$conf")"
  if [ ! -f "$target" ]; then
    live && die "$conf not found: is this a ParallelCluster Slurm head node?"
    log "no $target: skipped its include line (copy your slurm.conf there to see it)"
    return 0
  fi
  if grep -qxF "include $inc" "$target"; then
    return 0
  fi
  # Another AuthAltTypes (e.g. from CustomSlurmSettings) would fight ours.
  local other
  other="$(grep -lE '^[[:space:]]*AuthAlt(Types|Parameters)[[:space:]]*=' "$target" \
    "$(dirname "$target")"/pcluster/*.conf 2>/dev/null || true)"
  [ -z "$other" ] || die "AuthAltTypes/AuthAltParameters already set in: $other; remove them and rerun"
  printf '\n# VectorPipe: JWT auth for slurmrestd (managed by post-install.sh)\ninclude %s\n' "$inc" >>"$target"
  CHANGED+=("$conf")
  log "added 'include $inc' to $conf"
}

# --- users ----------------------------------------------------------------------------
ensure_token_user() {
  live || return 0
  if getent passwd "$TOKEN_USER" >/dev/null; then
    local uid
    uid="$(id -u "$TOKEN_USER")"
    [ "$uid" = "$TOKEN_UID" ] || die "user $TOKEN_USER exists with UID $uid, not $TOKEN_UID"
    return 0
  fi
  getent group "$TOKEN_USER" >/dev/null || groupadd -g "$TOKEN_UID" "$TOKEN_USER"
  local home_opt=(-M)
  # /home is shared from the head node: only it creates the home directory.
  if [ "$NODE_TYPE" = "HeadNode" ]; then home_opt=(-m); fi
  useradd -u "$TOKEN_UID" -g "$TOKEN_USER" "${home_opt[@]}" -d "/home/$TOKEN_USER" \
    -s /bin/bash -c "VectorPipe Slurm jobs" "$TOKEN_USER"
  log "created user $TOKEN_USER (uid $TOKEN_UID), no sudo"
}

ensure_rest_user() {
  live || return 0
  getent passwd "$REST_USER" >/dev/null && return 0
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin -c "slurmrestd and its TLS terminator" "$REST_USER"
  log "created system user $REST_USER"
}

install_packages() {
  live || return 0
  local missing=() p
  for p in nginx jq openssl curl; do
    command -v "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  if command -v dnf >/dev/null 2>&1; then
    dnf install -y -q "${missing[@]}"
  elif command -v apt-get >/dev/null 2>&1; then
    # Keep the distro's nginx.service from starting its port-80 default site.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
      || { rm -f /usr/sbin/policy-rc.d; die "apt-get install ${missing[*]} failed"; }
    rm -f /usr/sbin/policy-rc.d
  else
    die "no dnf or apt-get: install ${missing[*]} by hand"
  fi
}

# --- 1. JWT ---------------------------------------------------------------------------
setup_jwt() {
  local key
  key="$(dest "$JWT_KEY")"
  mkdir -p "$(dirname "$key")"
  if [ ! -s "$key" ]; then
    (umask 077 && head -c 32 /dev/urandom >"$key")
    CHANGED+=("$JWT_KEY")
    log "generated the JWT key $JWT_KEY"
  fi
  chmod 0600 "$key"
  if live; then chown "$SLURM_DAEMON_USER:$SLURM_DAEMON_USER" "$key"; fi

  put_file "$JWT_INCLUDE" 0644 root:root < <(render_jwt_include)
  ensure_include "$SLURM_ETC/slurm.conf" "$JWT_INCLUDE"
  if [ -f "$(dest "$SLURM_ETC/slurmdbd.conf")" ]; then
    ensure_include "$SLURM_ETC/slurmdbd.conf" "$JWT_INCLUDE"
  fi
}

render_jwt_include() {
  cat <<EOF
# Managed by VectorPipe post-install.sh: JWT as the alternate auth type, so
# slurmrestd can act for a user from the X-SLURM-USER-TOKEN it is given.
# The key is read only by slurmctld/slurmdbd; compute nodes do not need it.
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
EOF
}

restart_slurm_if_changed() {
  live || return 0
  if changed "$JWT_INCLUDE" || changed "$SLURM_ETC/slurmdbd.conf" || changed "$JWT_KEY"; then
    if [ -f "$SLURM_ETC/slurmdbd.conf" ] && systemctl is-enabled -q slurmdbd 2>/dev/null; then
      log "restarting slurmdbd"
      systemctl restart slurmdbd
    fi
  fi
  if changed "$JWT_INCLUDE" || changed "$SLURM_ETC/slurm.conf" || changed "$JWT_KEY"; then
    log "restarting slurmctld"
    systemctl restart slurmctld
  fi
  local i
  for i in $(seq 1 60); do
    "$SLURM_PREFIX/bin/scontrol" ping >/dev/null 2>&1 && return 0
    sleep 2
  done
  die "slurmctld does not answer after the restart (see /var/log/slurmctld.log)"
}

# --- 2. slurmrestd on a unix socket ---------------------------------------------------
render_slurmrestd_unit() {
  cat <<EOF
# Managed by VectorPipe post-install.sh.
# slurmrestd with JWT auth only, on a unix socket only: it has no TCP listener.
# Clients reach it through $TLS_UNIT.service (TLS on port $PORT).
[Unit]
Description=Slurm REST API (JWT, unix socket only)
After=network-online.target munge.service slurmctld.service
Wants=network-online.target

[Service]
Type=simple
User=$REST_USER
Group=$REST_USER
Environment=SLURM_JWT=daemon
Environment=SLURM_CONF=$SLURM_ETC/slurm.conf
RuntimeDirectory=slurmrestd
RuntimeDirectoryMode=0700
UMask=0077
ExecStart=$SLURM_PREFIX/sbin/slurmrestd -a rest_auth/jwt unix:$SOCKET
Restart=on-failure
RestartSec=5
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
CapabilityBoundingSet=

[Install]
WantedBy=multi-user.target
EOF
}

# --- 3. TLS terminator ----------------------------------------------------------------
render_nginx_conf() {
  local c
  cat <<EOF
# Managed by VectorPipe post-install.sh: the ONLY network listener in front of
# slurmrestd. TLS 1.2/1.3 on port $PORT, the allowed CIDRs and loopback only.
# Plain HTTP to this port gets a 400 from nginx and never reaches slurmrestd.
worker_processes 2;
pid $TLS_RUN/nginx.pid;
error_log $LOG_DIR/slurmrestd-tls-error.log warn;

events {
    worker_connections 512;
}

http {
    server_tokens off;
    # The default "combined" format: no request headers, so never a token.
    access_log $LOG_DIR/slurmrestd-tls-access.log combined;
    client_body_temp_path $TLS_STATE/client_body;
    proxy_temp_path $TLS_STATE/proxy;
    fastcgi_temp_path $TLS_STATE/fastcgi;
    uwsgi_temp_path $TLS_STATE/uwsgi;
    scgi_temp_path $TLS_STATE/scgi;
    client_max_body_size 4m;

    upstream slurmrestd {
        server unix:$SOCKET;
    }

    server {
        listen 0.0.0.0:$PORT ssl;
        ssl_certificate $TLS_DIR/server.crt;
        ssl_certificate_key $TLS_DIR/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers on;
        ssl_session_tickets off;

        allow 127.0.0.1;
EOF
  for c in "${ALLOWED_CIDRS[@]}"; do
    printf '        allow %s;\n' "$c"
  done
  cat <<EOF
        deny all;

        location / {
            proxy_pass http://slurmrestd;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host localhost;
            proxy_read_timeout 300s;
        }
    }
}
EOF
}

render_tls_unit() {
  cat <<EOF
# Managed by VectorPipe post-install.sh: TLS in front of slurmrestd's unix socket.
[Unit]
Description=TLS terminator for slurmrestd (nginx, port $PORT)
After=network-online.target slurmrestd.service
Wants=network-online.target slurmrestd.service

[Service]
Type=simple
User=$REST_USER
Group=$REST_USER
RuntimeDirectory=$TLS_UNIT
StateDirectory=$TLS_UNIT
LogsDirectory=vectorpipe
ExecStartPre=/usr/sbin/nginx -q -t -c $VP_ETC/slurmrestd-tls.nginx.conf
ExecStart=/usr/sbin/nginx -c $VP_ETC/slurmrestd-tls.nginx.conf -g 'daemon off;'
ExecReload=/bin/kill -HUP \$MAINPID
Restart=on-failure
RestartSec=5
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes
ReadWritePaths=-$SOCKET_DIR
CapabilityBoundingSet=

[Install]
WantedBy=multi-user.target
EOF
}

render_openssl_conf() {
  local i=0 s
  cat <<EOF
[req]
distinguished_name = dn
prompt = no

[dn]
CN = $HOST_FQDN

[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = @alt

[alt]
IP.1 = $PRIVATE_IP
IP.2 = 127.0.0.1
DNS.1 = $HOST_FQDN
DNS.2 = $HOST_SHORT
DNS.3 = localhost
EOF
  for s in ${TLS_SANS[@]+"${TLS_SANS[@]}"}; do
    if valid_ipv4 "$s"; then
      printf 'IP.%d = %s\n' $((i + 3)) "$s"
    else
      printf 'DNS.%d = %s\n' $((i + 4)) "$s"
    fi
    i=$((i + 1))
  done
}

setup_tls() {
  local dir cnf
  dir="$(dest "$TLS_DIR")"
  mkdir -p "$dir"
  chmod 0755 "$dir"
  put_file "$TLS_DIR/openssl.cnf" 0644 root:root < <(render_openssl_conf)
  cnf="$dir/openssl.cnf"
  if [ ! -s "$dir/ca.key" ] || [ ! -s "$dir/ca.crt" ]; then
    (umask 077 && openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
      -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 3650 -config "$cnf" -extensions v3_ca \
      -subj "/CN=VectorPipe slurmrestd CA ($HOST_SHORT)" 2>/dev/null)
    chmod 0644 "$dir/ca.crt"
    CHANGED+=("$TLS_DIR/ca.crt")
    log "created the private CA $TLS_DIR/ca.crt"
  fi
  chmod 0600 "$dir/ca.key"
  # (Re)issue the server certificate when missing, expiring within 30 days, or
  # when the names it must carry (openssl.cnf) changed.
  if [ ! -s "$dir/server.crt" ] || changed "$TLS_DIR/openssl.cnf" || changed "$TLS_DIR/ca.crt" \
    || ! openssl x509 -checkend $((30 * 86400)) -noout -in "$dir/server.crt" >/dev/null 2>&1; then
    (umask 077 \
      && openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$dir/server.key.new" -out "$dir/server.csr" -config "$cnf" 2>/dev/null \
      && openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -CAserial "$dir/ca.srl" -days 397 -extfile "$cnf" -extensions v3_server \
        -out "$dir/server.crt.new" 2>/dev/null)
    mv -f "$dir/server.key.new" "$dir/server.key"
    mv -f "$dir/server.crt.new" "$dir/server.crt"
    rm -f "$dir/server.csr"
    chmod 0644 "$dir/server.crt"
    CHANGED+=("$TLS_DIR/server.crt")
    log "issued the server certificate for $PRIVATE_IP $HOST_FQDN ${TLS_SANS[*]+${TLS_SANS[*]}}"
  fi
  chmod 0640 "$dir/server.key"
  if live; then
    chown root:root "$dir/ca.key" "$dir/ca.crt" "$dir/server.crt"
    chown "root:$REST_USER" "$dir/server.key"
  fi
}

# --- 4. token rotation ----------------------------------------------------------------
render_env_file() {
  cat <<EOF
# Managed by VectorPipe post-install.sh; read by \`vectorpipe-slurmrestd rotate\`.
TOKEN_USER=$TOKEN_USER
LIFESPAN=$LIFESPAN
SECRET_ID=$SECRET_ID
REGION=$REGION
ENDPOINT=https://$PRIVATE_IP:$PORT
CA_CERT=$TLS_DIR/ca.crt
SLURM_PREFIX=$SLURM_PREFIX
EOF
}

render_token_service() {
  cat <<EOF
# Managed by VectorPipe post-install.sh.
[Unit]
Description=Mint a slurmrestd JWT for $TOKEN_USER and store it in AWS Secrets Manager
After=network-online.target slurmctld.service
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=$INSTALLED_SCRIPT rotate
NoNewPrivileges=yes
PrivateTmp=yes
ProtectHome=read-only
ProtectSystem=full
EOF
}

render_token_timer() {
  cat <<EOF
# Managed by VectorPipe post-install.sh: a fresh token every half lifespan, so
# the secret always holds one with at least $((LIFESPAN / 2)) s left.
[Unit]
Description=Rotate the slurmrestd JWT of $TOKEN_USER into AWS Secrets Manager

[Timer]
OnBootSec=2min
OnUnitActiveSec=$((LIFESPAN / 2))s
RandomizedDelaySec=60
Persistent=true

[Install]
WantedBy=timers.target
EOF
}

# rotate: mint a token and store it. Everything secret goes through 0600 files
# in a private directory, never through argv or the log.
rotate() {
  [ -r "$ENV_FILE" ] || die "$ENV_FILE missing: run post-install.sh first"
  local TOKEN_USER="" LIFESPAN="" SECRET_ID="" REGION="" ENDPOINT="" CA_CERT="" SLURM_PREFIX=""
  # shellcheck source=/dev/null
  . "$ENV_FILE"
  local out expires work
  ROTATE_WORK="$(mktemp -d "$RUN_BASE/vectorpipe-token.XXXXXX")"
  work="$ROTATE_WORK"
  chmod 0700 "$work"
  trap 'rm -rf "$ROTATE_WORK"' EXIT
  (umask 077 && "$SLURM_PREFIX/bin/scontrol" token "username=$TOKEN_USER" "lifespan=$LIFESPAN" >"$work/out")
  out="$(sed -n 's/^SLURM_JWT=//p' "$work/out")"
  [ -n "$out" ] || die "scontrol token printed no SLURM_JWT"
  (umask 077 && printf '%s' "$out" >"$work/token")
  out=""
  expires=$(($(date +%s) + LIFESPAN))
  (umask 077 && jq -n --rawfile token "$work/token" --rawfile ca "$CA_CERT" \
    --arg user "$TOKEN_USER" --arg endpoint "$ENDPOINT" --argjson expires "$expires" \
    '{token: $token, ca_crt: $ca, user: $user, endpoint: $endpoint, expires: $expires}' \
    >"$work/secret.json")
  aws secretsmanager put-secret-value --region "$REGION" --secret-id "$SECRET_ID" \
    --secret-string "file://$work/secret.json" --query VersionId --output text >/dev/null
  log "stored a token for $TOKEN_USER (expires $(date -u -d "@$expires" +%FT%TZ)) in $SECRET_ID"
}

# --- putting it together ----------------------------------------------------------------
setup_units() {
  put_file "$UNIT_DIR/slurmrestd.service" 0644 root:root < <(render_slurmrestd_unit)
  put_file "$VP_ETC/slurmrestd-tls.nginx.conf" 0644 root:root < <(render_nginx_conf)
  put_file "$UNIT_DIR/$TLS_UNIT.service" 0644 root:root < <(render_tls_unit)
  put_file "$ENV_FILE" 0600 root:root < <(render_env_file)
  put_file "$UNIT_DIR/vectorpipe-slurm-token.service" 0644 root:root < <(render_token_service)
  put_file "$UNIT_DIR/vectorpipe-slurm-token.timer" 0644 root:root < <(render_token_timer)
  put_file "$INSTALLED_SCRIPT" 0755 root:root <"$SCRIPT_PATH"
}

start_units() {
  live || return 0
  systemctl daemon-reload
  # The distro's own nginx (port 80 default site) is not ours and stays off.
  if systemctl list-unit-files nginx.service >/dev/null 2>&1; then
    systemctl disable --now nginx.service >/dev/null 2>&1 || true
  fi
  systemctl enable slurmrestd.service "$TLS_UNIT.service" vectorpipe-slurm-token.timer
  if changed "$UNIT_DIR/slurmrestd.service" || changed "$JWT_INCLUDE"; then
    systemctl restart slurmrestd.service
  else
    systemctl start slurmrestd.service
  fi
  if changed "$UNIT_DIR/$TLS_UNIT.service" || changed "$VP_ETC/slurmrestd-tls.nginx.conf" \
    || changed "$TLS_DIR/server.crt"; then
    systemctl restart "$TLS_UNIT.service"
  else
    systemctl start "$TLS_UNIT.service"
  fi
  systemctl restart vectorpipe-slurm-token.timer
}

# The first token now, then prove the whole path: TLS (verified against our CA,
# over loopback, which the allow list always admits) -> nginx -> socket ->
# slurmrestd -> JWT -> slurmctld.
first_token_and_check() {
  live || return 0
  "$INSTALLED_SCRIPT" rotate
  local work code="" i
  work="$(mktemp -d "$RUN_BASE/vectorpipe-check.XXXXXX")"
  (umask 077 && "$SLURM_PREFIX/bin/scontrol" token "username=$TOKEN_USER" lifespan=600 \
    | sed -n 's/^SLURM_JWT=/X-SLURM-USER-TOKEN: /p' >"$work/headers" \
    && printf 'X-SLURM-USER-NAME: %s\n' "$TOKEN_USER" >>"$work/headers")
  for i in $(seq 1 30); do
    code="$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$TLS_DIR/ca.crt" \
      -H "@$work/headers" "https://127.0.0.1:$PORT/openapi/v3" 2>/dev/null || true)"
    [ "$code" = "200" ] && break
    sleep 2
  done
  rm -rf "$work"
  if [ "$code" = "200" ]; then
    log "slurmrestd answers over TLS (https://$PRIVATE_IP:$PORT for the VPC)"
    return 0
  fi
  die "https://127.0.0.1:$PORT/openapi/v3 answered '$code', not 200 (journalctl -u slurmrestd -u $TLS_UNIT)"
}

install_main() {
  parse_args "$@"
  load_cfnconfig
  log "node type $NODE_TYPE, user $TOKEN_USER (uid $TOKEN_UID)${DEST_ROOT:+, files under $DEST_ROOT only}"
  ensure_token_user
  if [ "$NODE_TYPE" != "HeadNode" ]; then
    log "done (only the user is needed on $NODE_TYPE nodes)"
    return 0
  fi
  discover_head_node
  install_packages
  ensure_rest_user
  setup_jwt
  restart_slurm_if_changed
  setup_tls
  # A work directory on the Lustre file system the jobs can write to.
  if live && mountpoint -q /fsx; then
    install -d -o "$TOKEN_USER" -g "$TOKEN_USER" -m 0750 /fsx/vectorpipe
  fi
  setup_units
  start_units
  first_token_and_check
  log "done: ${#CHANGED[@]} file(s) changed"
}

case "${1:-}" in
  rotate) shift; [ $# -eq 0 ] || die "rotate takes no arguments"; rotate ;;
  install) shift; install_main "$@" ;;
  *) install_main "$@" ;;
esac
