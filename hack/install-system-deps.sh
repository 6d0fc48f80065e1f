#!/usr/bin/env bash
# Installs the Debian packages VectorPipe needs on one machine: Open MPI for
# stage 2, Slurm + slurmrestd + munge for the bridge's live tests, buildah and
# debootstrap for images, containerd + runc + CNI plugins for the one-node
# cluster (hack/cluster/), and the genome/simulator packages the sample data and
# quality benchmark draw from. Idempotent: a machine that has them all is left
# alone (no apt-get update), so a warm machine pays nothing.
set -euo pipefail

PACKAGES=(
  openmpi-bin libopenmpi-dev
  slurm-wlm slurmrestd slurm-wlm-jwt-plugin munge
  buildah debootstrap
  containerd runc containernetworking-plugins iptables conntrack iproute2 util-linux gcc libc6-dev
  art-nextgen-simulation-tools kmer-examples bowtie2-examples
  lua5.1 jq shellcheck nginx openssl
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Packages like nginx start a service on install where systemd runs; the tests
# start their own instances, so forbid service starts during the install.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
