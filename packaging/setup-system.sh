#!/bin/bash
# Prepares the system for TuxSec: users, directories, default configs, systemd reload.
# Installed as <prefix>/setup-system.sh; run as root by install.sh and by the .deb's postinst.
# Reads what to create from the MANIFEST beside it (written by install.sh), so the layout is
# declared in one place. Idempotent: a second run changes nothing. Never overwrites a config (it
# only moves an older version's api_key out of agent.yaml, see below) and never changes an
# existing user.
set -euo pipefail
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MANIFEST=$HERE/MANIFEST
CHANGES=0

die() {
  echo "setup-system.sh: $*" >&2
  exit 1
}
say() {
  echo "  $*"
  CHANGES=$((CHANGES + 1))
}

[ "$(id -u)" = 0 ] || die "cannot set up the system: run as root"
[ -f "$MANIFEST" ] || die "cannot read $MANIFEST: no such file (run install.sh first)"

NOLOGIN=/usr/sbin/nologin
[ -x "$NOLOGIN" ] || NOLOGIN=/sbin/nologin
[ -x "$NOLOGIN" ] || NOLOGIN=/bin/false

ensure_user() { # name home
  local name=$1 home=$2 shell
  if ! getent group "$name" >/dev/null; then
    groupadd --system -- "$name"
    say "created group $name"
  fi
  if ! getent passwd "$name" >/dev/null; then
    # No login shell: SSH mode gets a restricted shell of its own, never bash.
    useradd --system --gid "$name" --home-dir "$home" --no-create-home --shell "$NOLOGIN" \
      --comment "TuxSec ${name#tuxsec}" -- "$name"
    say "created user $name ($NOLOGIN)"
  else
    shell=$(getent passwd "$name" | cut -d: -f7)
    case "$shell" in
      */nologin | /bin/false | /usr/bin/false) ;;
      *) echo "  note: user $name exists with login shell $shell (left as it is; TuxSec needs none)" ;;
    esac
  fi
}

# Directories that decide who may reach the socket and the secrets: never through a symlink.
ensure_dir() { # mode owner group path
  local mode=$1 owner=$2 group=$3 path=$4 now
  if [ -L "$path" ]; then die "cannot use $path: it is a symbolic link"; fi
  if [ ! -d "$path" ]; then
    [ ! -e "$path" ] || die "cannot create directory $path: a file is in the way"
    mkdir -p -m "$mode" "$path"
    chown "$owner:$group" "$path"
    say "created $path ($mode $owner:$group)"
    return
  fi
  now=$(stat -c '%a %U %G' "$path")
  if [ "$now" != "${mode#0} $owner $group" ]; then
    chown "$owner:$group" "$path"
    chmod "$mode" "$path"
    say "fixed $path: was $now, now ${mode#0} $owner:$group"
  fi
}

ensure_config() { # mode owner group path source
  local mode=$1 owner=$2 group=$3 path=$4 src=$5
  if [ -e "$path" ] || [ -L "$path" ]; then return; fi
  [ -f "$src" ] || die "cannot create $path: example $src is missing"
  install -m "$mode" -o "$owner" -g "$group" "$src" "$path"
  say "created $path ($mode $owner:$group) from $src"
}

SYSTEMD_RUNNING=0
[ -d /run/systemd/system ] && SYSTEMD_RUNNING=1
TMPFILES_CONF=/usr/lib/tmpfiles.d/tuxsec.conf

echo "setting up the system for TuxSec"
for pass in user sys-dir run-dir config; do
  while read -r type mode owner group path src; do
    [ "$type" = "$pass" ] || continue
    case "$type" in
      user) ensure_user "$owner" "$path" ;;
      sys-dir) ensure_dir "$mode" "$owner" "$group" "$path" ;;
      run-dir)
        if [ "$SYSTEMD_RUNNING" = 1 ] && [ -f "$TMPFILES_CONF" ]; then
          # The same entry recreates it at every boot.
          systemd-tmpfiles --create "$TMPFILES_CONF"
        fi
        ensure_dir "$mode" "$owner" "$group" "$path"
        ;;
      config) ensure_config "$mode" "$owner" "$group" "$path" "$src" ;;
    esac
  done < <(grep -v '^#' "$MANIFEST")
done

# An api_key that an older version kept in agent.yaml, which the socket group can read, moves to
# /etc/tuxsec/credentials/api_key (tuxsec alone); a group-readable ssl_key becomes 0600 tuxsec.
# Done by the agent's own code (atomic, comments kept); a no-op once done. A failure leaves the
# agent working as before, so it warns rather than failing the install.
AGENT_CONF=/etc/tuxsec/agent.yaml
if [ -f "$AGENT_CONF" ] && [ -x /usr/bin/tuxsec-agent ]; then
  if out=$(/usr/bin/tuxsec-agent migrate-secrets --config "$AGENT_CONF" 2>&1); then
    while IFS= read -r line; do [ -z "$line" ] || say "$line"; done <<<"$out"
  else
    echo "  warning: the agent's secrets stay where they are: $out" >&2
  fi
fi

if [ "$SYSTEMD_RUNNING" = 1 ]; then
  if [ "${SYSTEMD_UNITS:-1}" = 1 ]; then
    systemctl daemon-reload
    echo "  systemd: reloaded unit files"
  fi
  if ! systemctl is-enabled --quiet tuxsec-rootd.socket 2>/dev/null; then
    echo "next: sudo systemctl enable --now tuxsec-rootd.socket tuxsec-rootd.service tuxsec-agent.service"
  fi
else
  echo "  systemd is not running here (no /run/systemd/system): skipped daemon-reload; start tuxsec-rootd yourself"
fi
[ "$CHANGES" -gt 0 ] || echo "  nothing to change"
