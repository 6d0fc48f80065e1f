#!/usr/bin/env bash
# The one-node cluster's certificates, made with openssl (sourced by cluster.sh).
#
#   write_pki DIR NODE_IP NODE_NAME SERVICE_IP
#
# One CA signs everything: the API server's serving certificate (valid for the
# node IP, the `kubernetes` Service IP and names, and 127.0.0.1 for the
# forwarder), one client certificate per component with the identity the
# default RBAC bindings expect (system:kube-controller-manager,
# system:kube-scheduler, system:kube-proxy, system:node:NAME in system:nodes,
# and an admin in system:masters), the kubelet's serving certificate, and the
# service-account signing key pair. Keys are EC P-256: fast to make.

# cert NAME SUBJECT EXT_FILE_OR_EMPTY
_vp_cert() {
  local dir=$1 name=$2 subject=$3 ext=${4:-}
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$name.key" 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "$subject" -out "$dir/$name.csr" 2>/dev/null
  local args=(-req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial
              -days 3650 -sha256 -out "$dir/$name.crt")
  [[ -n "$ext" ]] && args+=(-extfile "$ext")
  openssl x509 "${args[@]}" 2>/dev/null
  rm -f "$dir/$name.csr"
}

write_pki() {
  local dir=$1 node_ip=$2 node=$3 service_ip=$4
  mkdir -p "$dir"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$dir/ca.key" -subj "/CN=vectorpipe-cluster-ca" -days 3650 \
    -sha256 -out "$dir/ca.crt" 2>/dev/null

  cat >"$dir/server.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:${node_ip},IP:${service_ip},IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
  cat >"$dir/kubelet.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:${node_ip},DNS:${node}
EOF
  cat >"$dir/client.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EOF
  _vp_cert "$dir" apiserver "/CN=kube-apiserver" "$dir/server.ext"
  _vp_cert "$dir" kubelet-serving "/CN=system:node:${node}" "$dir/kubelet.ext"
  _vp_cert "$dir" admin "/O=system:masters/CN=vectorpipe-admin" "$dir/client.ext"
  _vp_cert "$dir" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$dir/client.ext"
  _vp_cert "$dir" controller-manager "/CN=system:kube-controller-manager" "$dir/client.ext"
  _vp_cert "$dir" scheduler "/CN=system:kube-scheduler" "$dir/client.ext"
  _vp_cert "$dir" kube-proxy "/CN=system:kube-proxy" "$dir/client.ext"
  _vp_cert "$dir" kubelet "/O=system:nodes/CN=system:node:${node}" "$dir/client.ext"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/sa.key" 2>/dev/null
  openssl pkey -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  chmod 600 "$dir"/*.key
}

# write_kubeconfig FILE SERVER PKI_DIR CLIENT_NAME
write_kubeconfig() {
  local file=$1 server=$2 dir=$3 client=$4
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vectorpipe
  cluster:
    server: ${server}
    certificate-authority-data: $(base64 -w0 "$dir/ca.crt")
users:
- name: ${client}
  user:
    client-certificate-data: $(base64 -w0 "$dir/${client}.crt")
    client-key-data: $(base64 -w0 "$dir/${client}.key")
contexts:
- name: vectorpipe
  context: {cluster: vectorpipe, user: ${client}}
current-context: vectorpipe
EOF
  chmod 600 "$file"
}
