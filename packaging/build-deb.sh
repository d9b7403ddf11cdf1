#!/bin/bash
# Builds tuxsec_<version>_<arch>.deb from the layout install.sh stages (install.sh --destdir).
#
#   bash packaging/build-deb.sh [--out DIR] [--no-build]
#
# The package holds program files only; its postinst runs /usr/lib/tuxsec/setup-system.sh, which
# creates the users, directories and default configs (so no config is a dpkg conffile: an
# operator's config is never replaced or prompted about). Prints the installed size.
set -euo pipefail

OUT=$PWD
BUILD_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || { echo "build-deb.sh: cannot parse --out: missing value" >&2; exit 1; }; OUT=$2; shift 2 ;;
    --no-build) BUILD_ARGS+=(--no-build); shift ;;
    *) echo "build-deb.sh: cannot use argument \"$1\": unknown" >&2; exit 1 ;;
  esac
done
command -v dpkg-deb >/dev/null || { echo "build-deb.sh: cannot build: dpkg-deb not found (apt install dpkg)" >&2; exit 1; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
STAGE=$(mktemp -d /tmp/tuxsec-deb.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
chmod 0755 "$STAGE"

# Debian's nodejs package provides /usr/bin/node, which the launchers name.
bash "$REPO/install.sh" --destdir "$STAGE" --node /usr/bin/node "${BUILD_ARGS[@]}" >/dev/null
# dpkg removes the files; an uninstall.sh beside them would confuse its database.
rm -f "$STAGE/usr/lib/tuxsec/uninstall.sh"
sed -i '\#^prog-file .* /usr/lib/tuxsec/uninstall.sh$#d' "$STAGE/usr/lib/tuxsec/MANIFEST"

VERSION=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$REPO/package.json")
case "$(ls "$STAGE/usr/lib/tuxsec/node_modules/@koromix")" in
  koffi-linux-x64) ARCH=amd64 ;;
  koffi-linux-arm64) ARCH=arm64 ;;
  *) echo "build-deb.sh: cannot tell the Debian architecture of the staged native files" >&2; exit 1 ;;
esac
SIZE_KB=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)

mkdir -p "$STAGE/DEBIAN"
cat >"$STAGE/DEBIAN/control" <<CONTROL
Package: tuxsec
Version: $VERSION
Architecture: $ARCH
Maintainer: TuxSec maintainers <tuxsec@example.com>
Depends: nodejs (>= 20), passwd
Recommends: firewalld
Section: admin
Priority: optional
Installed-Size: $SIZE_KB
Homepage: https://github.com/tuxsec/tuxsec-agent
Description: TuxSec agent: privilege-separated system management
 tuxsec-rootd runs predeclared module actions (firewalld, system information)
 as root for clients on a Unix socket; tuxsec-agent, an unprivileged user,
 carries jobs between a TuxSec server and tuxsec-rootd; tuxsec-cli is the
 command line; tuxsec-server is the reference control server.
CONTROL
for s in postinst prerm postrm; do install -m 0755 "$REPO/packaging/deb/$s" "$STAGE/DEBIAN/$s"; done

DEB=$OUT/tuxsec_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
echo "built $DEB: $(stat -c %s "$DEB") bytes, installed size $SIZE_KB KiB"
