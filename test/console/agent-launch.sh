#!/bin/sh
# Runs a program as one simulated host: started by harness.ts under
# `unshare --mount --uts --propagation private`, it bind-mounts $1 over /etc/machine-id and sets the
# host name to $2 in this process's own namespaces (the machine's are never touched), then runs the
# rest of the command line as uid $3 / gid $4 (through setpriv, with that user's groups) or as root
# when $3 is 0. So several real agents on one machine enroll as different machines.
set -eu
mount --bind -- "$1" /etc/machine-id
/usr/bin/hostname -- "$2"
uid=$3
gid=$4
shift 4
if [ "$uid" = 0 ]; then exec "$@"; fi
exec /usr/bin/setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$@"
