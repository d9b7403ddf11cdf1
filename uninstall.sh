#!/bin/bash
# Removes what install.sh installed: program files, launchers, systemd units.
#
#   sudo bash uninstall.sh [--prefix /usr/lib/tuxsec] [--purge] [--destdir DIR]
#
# Keeps /etc/tuxsec (configs, certificates, the agent's credentials), /var/lib/tuxsec and the logs,
# so a reinstall picks up where it left off; --purge removes those too. The tuxsec and
# tuxsec-server users stay either way: files elsewhere may still carry their ids.
# Also installed as <prefix>/uninstall.sh, which works without the source tree.
set -euo pipefail

PREFIX=/usr/lib/tuxsec
DESTDIR=
PURGE=0

die() {
  echo "uninstall.sh: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die "cannot parse --prefix: missing value"; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --destdir) [ $# -ge 2 ] || die "cannot parse --destdir: missing value"; DESTDIR=$2; shift 2 ;;
    --destdir=*) DESTDIR=${1#*=}; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) sed -n '4p' "$0" | sed 's/^#   //'; exit 0 ;;
    *) die "cannot use argument \"$1\": unknown (try --help)" ;;
  esac
done
[[ $PREFIX =~ ^/[A-Za-z0-9._/-]+$ && ! $PREFIX =~ (^|/)\.\.?(/|$) ]] \
  || die "cannot use --prefix \"$PREFIX\": expected an absolute path"
PREFIX=${PREFIX%/}
DESTDIR=${DESTDIR%/}
[ -n "$DESTDIR" ] || [ "$(id -u)" = 0 ] || die "cannot uninstall: run as root"

MANIFEST=$DESTDIR$PREFIX/MANIFEST
[ -f "$MANIFEST" ] || die "cannot uninstall from $PREFIX: $MANIFEST not found (nothing installed there?)"
entries=$(grep -v '^#' "$MANIFEST")

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
  for u in tuxsec-agent.service tuxsec-server.service tuxsec-rootd.service tuxsec-rootd.socket; do
    systemctl disable --now "$u" 2>/dev/null || true
  done
fi

# The manifest names only our paths; check anyway before deleting anything as root.
ours() {
  [[ $1 == "$PREFIX" || $1 == "$PREFIX"/* || $1 == /usr/bin/tuxsec-* || $1 == /usr/lib/systemd/system/tuxsec-* || $1 == /usr/lib/tmpfiles.d/tuxsec* ]]
}
state() {
  [[ $1 =~ ^/(etc|var/lib|var/log|run)/tuxsec(-[a-z]+)?(/|$) ]]
}

removed=0
# Files first, then our directories deepest first; a directory holding files that are not ours
# (an operator's plugin, say) stays.
while read -r type mode owner group path src; do
  [ "$type" = prog-file ] && ours "$path" || continue
  if [ -e "$DESTDIR$path" ] || [ -L "$DESTDIR$path" ]; then
    rm -f -- "$DESTDIR$path"
    removed=$((removed + 1))
  fi
done <<<"$entries"
while read -r path; do
  ours "$path" && [ -d "$DESTDIR$path" ] || continue
  if rmdir -- "$DESTDIR$path" 2>/dev/null; then
    removed=$((removed + 1))
  else
    echo "kept $path: it holds files install.sh did not put there" >&2
  fi
done < <(awk '$1 == "prog-dir" { print length($5) " " $5 }' <<<"$entries" | sort -rn | cut -d' ' -f2-)
echo "removed $removed program file(s) and directories"

if [ "$PURGE" = 1 ]; then
  while read -r type mode owner group path src; do
    case "$type" in
      config) state "$path" && [ -e "$DESTDIR$path" ] && rm -f -- "$DESTDIR$path" && echo "purged $path" ;;
    esac
  done <<<"$entries"
  while read -r path; do
    if state "$path" && [ -e "$DESTDIR$path" ]; then
      rm -rf -- "$DESTDIR$path"
      echo "purged $path"
    fi
  done < <(awk '$1 == "sys-dir" || $1 == "run-dir" { print length($5) " " $5 }' <<<"$entries" | sort -rn | cut -d' ' -f2-)
  echo "kept the users tuxsec and tuxsec-server (remove them with userdel if nothing else uses them)"
else
  echo "kept /etc/tuxsec, /var/lib/tuxsec and the logs (--purge removes them)"
fi

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
