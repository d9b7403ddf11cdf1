#!/bin/sh
# Runs firewalld inside network namespace $2 with $1 bind-mounted over /etc/firewalld.
# Started by firewalld-netns.ts under `unshare --mount --propagation private`, so the bind
# mount lives only in this process's private mount namespace and the host's /etc is never written.
set -eu
mount --bind -- "$1" /etc/firewalld
exec /usr/sbin/ip netns exec "$2" /usr/sbin/firewalld --nofork --nopid
