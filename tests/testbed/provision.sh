#!/bin/sh
# Provision a fresh Debian sid minbase root filesystem for the fcgtainer testbed.
#
# Runs once per root filesystem, as root, chrooted into it by `testbed up` (with /proc,
# /dev and /sys mounted). The testbed caches the result under a key that is a hash of this
# file, so any change here rebuilds the root filesystem on the next `up`.
# Everything that may change without a rebuild (daemon configuration, the editable install
# of the project) is done by `testbed up` on every start instead.
#
# Environment set by `testbed up`: TESTBED_USER, TESTBED_UID, TESTBED_CA (path of the host's
# CA bundle copied into the root filesystem).
set -eu

: "${TESTBED_USER:?}" "${TESTBED_UID:?}" "${TESTBED_CA:?}"
export DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8

# The sid Release file is usually past its Valid-Until date on the mirrors reachable here.
echo 'Acquire::Check-Valid-Until "false";' > /etc/apt/apt.conf.d/99fcgtainer-testbed
# No init system runs here: package scripts must not try to start services.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d

apt-get update -q
apt-get install -y -q --no-install-recommends \
    apptainer squashfs-tools squashfuse fuse3 debootstrap \
    condor \
    slurmctld slurmd slurm-client slurmdbd munge mariadb-server mariadb-client \
    docker-registry \
    python3-venv python3-dev gcc libc6-dev \
    fuse2fs gocryptfs ca-certificates procps iproute2 less
apt-get clean

# HTTPS from these machines goes through a TLS-intercepting proxy whose CA only the host's
# bundle has: every HTTPS client inside uses that bundle.
cat > /etc/pip.conf <<EOF
[global]
cert = $TESTBED_CA
EOF

useradd --create-home --uid "$TESTBED_UID" --shell /bin/bash "$TESTBED_USER"
echo "$TESTBED_USER:100000:65536" > /etc/subuid
echo "$TESTBED_USER:100000:65536" > /etc/subgid

# munge: the package normally creates the key; make sure it exists with the right mode.
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key

# SLURM accounting storage.
mariadb-install-db --user=mysql --datadir=/var/lib/mysql \
    --auth-root-authentication-method=socket --skip-test-db > /var/log/mariadb-install-db.log
install -d -o root -m 755 /var/spool/slurmctld /var/spool/slurmd /var/log/slurm

# A venv for the tests, with the HTCondor bindings of the pool's own version. The project
# itself is installed editable into it by `testbed up` (it lives in the bind-mounted repo).
condor_version=$(dpkg-query -W -f '${Version}' condor | sed 's/[+~-].*//')
venv=/home/$TESTBED_USER/venv
if python3 -m venv "$venv" \
        && "$venv/bin/pip" install -q "htcondor==$condor_version" pytest; then
    :
else
    # No wheel for this Python on PyPI: fall back to Debian's bindings.
    echo "provision: no htcondor==$condor_version wheel; using python3-htcondor" >&2
    apt-get install -y -q --no-install-recommends python3-htcondor
    apt-get clean
    rm -rf "$venv"
    python3 -m venv --system-site-packages "$venv"
    "$venv/bin/pip" install -q pytest
fi
chown -R "$TESTBED_USER:$TESTBED_USER" "/home/$TESTBED_USER"
