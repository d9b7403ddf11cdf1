#!/bin/bash
# Installs TuxSec (tuxsec-rootd, tuxsec-agent, tuxsec-cli, tuxsec-server) from this source tree.
#
#   sudo bash install.sh [--prefix /usr/lib/tuxsec] [--destdir DIR] [--no-systemd] [--no-build] [--node PATH]
#
# Program files go into the prefix (the bundles from dist/ plus only the runtime files of the two
# native packages, koffi and better-sqlite3), launchers into /usr/bin, systemd units into
# /usr/lib/systemd/system. Then packaging/setup-system.sh (installed as <prefix>/setup-system.sh)
# creates the users, directories and default configs; it never overwrites a config.
#
# --destdir DIR stages everything under DIR for packaging and touches nothing outside it: no users,
# no chown. The owners and modes the system needs are recorded in <prefix>/MANIFEST, which
# setup-system.sh (run by the package's postinst) applies.
#
# Running it again changes nothing unless a source file changed: files are compared before they
# are replaced, and replaced by rename so a running daemon keeps its old copy intact.
set -euo pipefail
umask 022

PREFIX=/usr/lib/tuxsec
DESTDIR=
SYSTEMD=1
BUILD=1
NODE=

usage() {
  sed -n '4p' "$0" | sed 's/^#   //'
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die "cannot parse --prefix: missing value"; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --destdir) [ $# -ge 2 ] || die "cannot parse --destdir: missing value"; DESTDIR=$2; shift 2 ;;
    --destdir=*) DESTDIR=${1#*=}; shift ;;
    --node) [ $# -ge 2 ] || die "cannot parse --node: missing value"; NODE=$2; shift 2 ;;
    --node=*) NODE=${1#*=}; shift ;;
    --no-systemd) SYSTEMD=0; shift ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "cannot use argument \"$1\": unknown (try --help)" ;;
  esac
done

# The prefix is written into launchers and units: keep it to plain path characters.
[[ $PREFIX =~ ^/[A-Za-z0-9._/-]+$ && ! $PREFIX =~ (^|/)\.\.?(/|$) ]] \
  || die "cannot use --prefix \"$PREFIX\": expected an absolute path of letters, digits, . _ - /"
PREFIX=${PREFIX%/}
if [ -n "$DESTDIR" ]; then
  [[ $DESTDIR == /* ]] || DESTDIR=$PWD/$DESTDIR
  DESTDIR=${DESTDIR%/}
  [ "$DESTDIR" != "" ] || die "cannot use --destdir \"/\": leave it out to install into the system"
else
  [ "$(id -u)" = 0 ] || die "cannot install into the system: run as root (sudo bash install.sh), or stage with --destdir"
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$REPO"

if [ -z "$NODE" ]; then
  NODE=$(command -v node || true)
  [ -n "$NODE" ] || die "cannot find node: install Node.js 20 or later (Debian: apt install nodejs)"
fi
[[ $NODE =~ ^/[A-Za-z0-9._/-]+$ ]] || die "cannot use node \"$NODE\": expected an absolute path"
if [ -z "$DESTDIR" ] || [ -x "$NODE" ]; then
  [ -x "$NODE" ] || die "cannot use node \"$NODE\": not an executable file"
  major=$("$NODE" -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || die "cannot use node \"$NODE\": version $("$NODE" --version) is older than 20"
fi
if [ -z "$DESTDIR" ]; then
  # tuxsec-rootd runs as root through this binary: whoever can change it owns the machine.
  real=$(readlink -f -- "$NODE")
  d=$real
  while :; do
    read -r uid mode <<<"$(stat -c '%u %a' -- "$d")"
    { [ "$uid" = 0 ] && (( (8#$mode & 8#022) == 0 || (8#$mode & 8#1000) != 0 )); } \
      || die "cannot use node \"$NODE\": $d is not owned by root or is writable by others (install Node.js system-wide)"
    [ "$d" = / ] && break
    d=$(dirname -- "$d")
  done
fi

# --- build ------------------------------------------------------------------------------------
PROGRAMS=(tuxsec-rootd tuxsec-cli tuxsec-agent tuxsec-server tuxsec-shell)
# The bundle file of each program: ES modules, except the CLI, its doctor and tuxsec-shell (CommonJS, they start faster).
bundle() { case "$1" in tuxsec-cli | tuxsec-cli-doctor | tuxsec-shell) echo "$1.cjs" ;; *) echo "$1.js" ;; esac; }
missing=()
# tuxsec-server-serve.js: the server itself, loaded by "tuxsec-server serve" only (its operator
# commands start faster without it); tuxsec-cli-doctor.cjs likewise for "tuxsec-cli doctor".
for p in "${PROGRAMS[@]}" sdk tuxsec-server-serve tuxsec-cli-doctor; do [ -f "dist/$(bundle "$p")" ] || missing+=("dist/$(bundle "$p")"); done
[ -f dist/console/index.html ] || missing+=(dist/console/index.html)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$BUILD" = 1 ] || die "cannot install: ${missing[*]} missing and --no-build given (run npm run build)"
  if [ ! -d node_modules ]; then
    echo "installing build dependencies (npm ci)"
    npm ci --no-audit --no-fund
  fi
  echo "building (npm run build)"
  npm run build --silent
fi

ARCH=$("$NODE" -p 'process.arch' 2>/dev/null || uname -m | sed 's/x86_64/x64/;s/aarch64/arm64/')
KOFFI_NATIVE=node_modules/@koromix/koffi-linux-$ARCH
for f in node_modules/koffi/package.json node_modules/better-sqlite3/build/Release/better_sqlite3.node \
  node_modules/bindings/bindings.js node_modules/file-uri-to-path/index.js "$KOFFI_NATIVE/linux_$ARCH/koffi.node"; do
  [ -f "$f" ] || die "cannot install: $f is missing (npm ci on a linux-$ARCH machine provides it)"
done

# --- staging helpers ----------------------------------------------------------------------------
CHANGED=0
MANIFEST_LINES=()

record() { # type mode owner group path [source]
  MANIFEST_LINES+=("$*")
}

mkdir_p() { # path mode: a directory of ours, root-owned
  local d=$1 mode=$2
  if [ ! -d "$DESTDIR$d" ]; then
    mkdir -p "$DESTDIR$d"
    CHANGED=$((CHANGED + 1))
  fi
  if [ "$(stat -c %a "$DESTDIR$d")" != "${mode#0}" ]; then
    chmod "$mode" "$DESTDIR$d"
    CHANGED=$((CHANGED + 1))
  fi
  record prog-dir "$mode" root root "$d"
}

shared_dir() { # path: a system directory (/usr/bin, ...) created only if missing, never changed or removed
  if [ ! -d "$DESTDIR$1" ]; then
    mkdir -p -m 0755 "$DESTDIR$1"
    CHANGED=$((CHANGED + 1))
  fi
  record shared-dir 0755 root root "$1"
}

# Writes a file only when its content or mode differs; replaces by rename so a process that has
# the old file open or mapped (a running daemon's .node) keeps it.
put() { # source-file dest mode
  local src=$1 dst=$2 mode=$3 tmp
  if [ -f "$DESTDIR$dst" ] && [ ! -L "$DESTDIR$dst" ] && cmp -s "$src" "$DESTDIR$dst"; then
    if [ "$(stat -c %a "$DESTDIR$dst")" != "${mode#0}" ]; then
      chmod "$mode" "$DESTDIR$dst"
      CHANGED=$((CHANGED + 1))
    fi
  else
    tmp=$(dirname "$DESTDIR$dst")/.tuxsec-install.$$
    cp "$src" "$tmp"
    chmod "$mode" "$tmp"
    [ -n "$DESTDIR" ] || chown 0:0 "$tmp"
    mv -f "$tmp" "$DESTDIR$dst"
    CHANGED=$((CHANGED + 1))
  fi
  record prog-file "$mode" root root "$dst"
}

put_text() { # dest mode text; no temp file unless the content changed
  local dst=$1 mode=$2 tmp
  if [ -f "$DESTDIR$dst" ] && [ ! -L "$DESTDIR$dst" ] && printf '%s' "$3" | cmp -s - "$DESTDIR$dst"; then
    if [ "$(stat -c %a "$DESTDIR$dst")" != "${mode#0}" ]; then
      chmod "$mode" "$DESTDIR$dst"
      CHANGED=$((CHANGED + 1))
    fi
  else
    tmp=$(dirname "$DESTDIR$dst")/.tuxsec-install.$$
    printf '%s' "$3" >"$tmp"
    chmod "$mode" "$tmp"
    [ -n "$DESTDIR" ] || chown 0:0 "$tmp"
    mv -f "$tmp" "$DESTDIR$dst"
    CHANGED=$((CHANGED + 1))
  fi
  record prog-file "$mode" root root "$dst"
}

# --- program files ------------------------------------------------------------------------------
BINDIR=/usr/bin
UNITDIR=/usr/lib/systemd/system
TMPFILESDIR=/usr/lib/tmpfiles.d
VERSION=$("$NODE" -p 'require("./package.json").version' 2>/dev/null || sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json)

shared_dir "$(dirname "$PREFIX")"
mkdir_p "$PREFIX" 0755
for p in "${PROGRAMS[@]}" sdk tuxsec-server-serve tuxsec-cli-doctor; do put "dist/$(bundle "$p")" "$PREFIX/$(bundle "$p")" 0644; done
# The web console tuxsec-server serves at / (beside tuxsec-server-serve.js): index.html and its
# content-hashed assets with their .br and .gz copies. An upgrade's old hashed names leave through
# the MANIFEST below.
mkdir_p "$PREFIX/console" 0755
mkdir_p "$PREFIX/console/assets" 0755
for f in dist/console/index.html*; do put "$f" "$PREFIX/console/${f##*/}" 0644; done
for f in dist/console/assets/*; do put "$f" "$PREFIX/console/assets/${f##*/}" 0644; done
# The bundles are ES modules; Node 20 needs "type": "module" to load them from a .js file.
put_text "$PREFIX/package.json" 0644 "{
  \"name\": \"tuxsec-installed\",
  \"version\": \"$VERSION\",
  \"private\": true,
  \"type\": \"module\"
}
"

# Only what runs: no sources, headers, build trees or prebuilt binaries for other systems.
nm_put() { # package-relative path, mode
  local rel=$1 mode=${2:-0644}
  local d
  d=$(dirname "$PREFIX/node_modules/$rel")
  local parts=${d#"$PREFIX"} acc=$PREFIX
  IFS=/ read -ra segs <<<"${parts#/}"
  for s in "${segs[@]}"; do acc=$acc/$s; mkdir_p "$acc" 0755; done
  put "node_modules/$rel" "$PREFIX/node_modules/$rel" "$mode"
}
for f in package.json index.js LICENSE.txt src/koffi/index.js src/koffi/src/static.js; do nm_put "koffi/$f"; done
for f in package.json index.js "linux_$ARCH/koffi.node"; do nm_put "${KOFFI_NATIVE#node_modules/}/$f"; done
for f in package.json LICENSE build/Release/better_sqlite3.node; do nm_put "better-sqlite3/$f"; done
for f in node_modules/better-sqlite3/lib/*.js node_modules/better-sqlite3/lib/methods/*.js; do nm_put "${f#node_modules/}"; done
for f in package.json bindings.js LICENSE.md; do nm_put "bindings/$f"; done
for f in package.json index.js LICENSE; do nm_put "file-uri-to-path/$f"; done

mkdir_p "$PREFIX/examples" 0755
for f in rootd.yaml.example agent.yaml.example server.yaml.example tuxsec-agent-api-key.conf; do
  put "packaging/$f" "$PREFIX/examples/$f" 0644
done
mkdir_p "$PREFIX/docs" 0755
put docs/installation.md "$PREFIX/docs/installation.md" 0644
put packaging/setup-system.sh "$PREFIX/setup-system.sh" 0755
put uninstall.sh "$PREFIX/uninstall.sh" 0755

shared_dir "$BINDIR"
for p in "${PROGRAMS[@]}"; do
  case "$(bundle "$p")" in
    *.cjs) load="require('$PREFIX/$(bundle "$p")');" ;;
    *) load="import('$PREFIX/$(bundle "$p")');" ;;
  esac
  # tuxsec-rootd runs on every managed server: a 1 MiB young generation keeps its memory
  # near where it started after a burst of requests, at little cost in speed (bench/rootd-load.ts).
  flags=""
  [ "$p" = tuxsec-rootd ] && flags=" --max-semi-space-size=1"
  put_text "$BINDIR/$p" 0755 "#!$NODE$flags
// $p launcher (install.sh): the program is the bundle in $PREFIX.
$load
"
done

if [ "$SYSTEMD" = 1 ]; then
  shared_dir "$UNITDIR"
  for u in tuxsec-rootd.service tuxsec-rootd.socket tuxsec-agent.service tuxsec-server.service; do
    put "packaging/systemd/$u" "$UNITDIR/$u" 0644
  done
  shared_dir "$TMPFILESDIR"
  put packaging/tmpfiles.d-tuxsec.conf "$TMPFILESDIR/tuxsec.conf" 0644
fi

# --- what setup-system.sh creates on the target system --------------------------------------------
record user - tuxsec tuxsec /var/lib/tuxsec
record user - tuxsec-server tuxsec-server /var/lib/tuxsec-server
record sys-dir 0750 root tuxsec /etc/tuxsec
record sys-dir 0750 root tuxsec /etc/tuxsec/certs
# The agent's api_key (register and migrate-secrets write it): tuxsec alone, not the socket group.
record sys-dir 0700 tuxsec tuxsec /etc/tuxsec/credentials
record sys-dir 0755 tuxsec tuxsec /var/log/tuxsec
record sys-dir 0750 tuxsec tuxsec /var/lib/tuxsec
record sys-dir 0750 root root /var/log/tuxsec-rootd
record sys-dir 0750 root tuxsec-server /etc/tuxsec-server
record sys-dir 0700 tuxsec-server tuxsec-server /var/lib/tuxsec-server
record run-dir 0750 root tuxsec /run/tuxsec
record run-dir 0700 tuxsec tuxsec /run/tuxsec-shell
record config 0640 root root /etc/tuxsec/rootd.yaml "$PREFIX/examples/rootd.yaml.example"
record config 0640 root tuxsec /etc/tuxsec/agent.yaml "$PREFIX/examples/agent.yaml.example"

record prog-file 0644 root root "$PREFIX/MANIFEST"
# An upgrade removes what the previous version installed and this one no longer does.
declare -A NOW=()
for l in "${MANIFEST_LINES[@]}"; do
  read -r type _ _ _ path _ <<<"$l"
  [ "$type" = prog-file ] && NOW[$path]=1
done
if [ -f "$DESTDIR$PREFIX/MANIFEST" ]; then
  while read -r type _ _ _ path _; do
    # Only ever our own kind of path, whatever the old manifest says.
    [[ $path == "$PREFIX"/* || $path == /usr/bin/tuxsec-* || $path == "$UNITDIR"/tuxsec-* || $path == "$TMPFILESDIR"/tuxsec* ]] || continue
    if [ "$type" = prog-file ] && [ -z "${NOW[$path]:-}" ] && [ -e "$DESTDIR$path" ]; then
      rm -f -- "$DESTDIR$path"
      echo "removed $path (no longer part of TuxSec)"
      CHANGED=$((CHANGED + 1))
    fi
  done < <(grep -v '^#' "$DESTDIR$PREFIX/MANIFEST")
fi
manifest="# TuxSec $VERSION install manifest: type mode owner group path [source]
# prog-*: program files (removed by uninstall.sh); user, sys-dir, run-dir, config: created by
# setup-system.sh, kept by uninstall.sh unless --purge.
$(printf '%s\n' "${MANIFEST_LINES[@]}" | awk '!seen[$0]++')
"
put_text "$PREFIX/MANIFEST" 0644 "$manifest"

units=; [ "$SYSTEMD" = 1 ] && units=", $UNITDIR"
echo "program files: $CHANGED change(s) under ${DESTDIR:-/} ($PREFIX, $BINDIR$units)"
if [ -n "$DESTDIR" ]; then
  echo "staged into $DESTDIR; owners and system directories are in $PREFIX/MANIFEST (setup-system.sh applies them)"
  exit 0
fi

if [ -d /etc/systemd/system ]; then
  for u in tuxsec-rootd.service tuxsec-agent.service; do
    if [ -f "/etc/systemd/system/$u" ]; then
      echo "warning: /etc/systemd/system/$u (an older install?) overrides $UNITDIR/$u: remove it to use the new unit" >&2
    fi
  done
fi

SYSTEMD_UNITS=$SYSTEMD bash "$PREFIX/setup-system.sh"

# An upgrade takes effect in running services only when they restart; try-restart leaves
# stopped ones stopped.
if [ "$CHANGED" -gt 0 ] && [ -d /run/systemd/system ] && [ "$SYSTEMD" = 1 ]; then
  systemctl try-restart tuxsec-rootd.service tuxsec-agent.service tuxsec-server.service
  echo "restarted the TuxSec services that were running"
fi
