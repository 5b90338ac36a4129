#!/usr/bin/env bash
# Install the Debian packages opscheck's own tests and demo start for real (none auto-start).
# As root: installs what is missing. Otherwise: names exactly what is missing and fails.
set -euo pipefail

packages=(
  openssh-server openssh-client   # sshd for the ssh:// host tests, ssh for testinfra
  procps iproute2                  # ps (services), ss (listening ports) for testinfra modules
  postgresql-15                    # initdb/pg_ctl/pg_dump for the PostgreSQL tests
  redis-server                     # the Redis tests
  sqlite3                          # the SQLite checks on remote hosts use the sqlite3 CLI
  systemd-journal-remote           # writes real journal files for the journald log tests
  prometheus prometheus-alertmanager prometheus-pushgateway prometheus-node-exporter
                                   # the Prometheus, Alertmanager and metrics tests and demo
  docker.io busybox-static         # dockerd and a registry-free image for the Docker tests
  chromium fonts-dejavu-core      # the report's browser tests (Playwright drives this chromium)
  etcd-server openssl              # the testbed Kubernetes: its etcd, its PKI (the Kubernetes
                                   # binaries: build-kubernetes.sh, which installs its own
                                   # build packages golang-go rsync gcc make dpkg-dev when it runs)
)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "opscheck setup: missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "opscheck setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
