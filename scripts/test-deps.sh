#!/usr/bin/env bash
# Installs the Debian packages the tests need (idempotent). Run as root on Debian 12.
set -euo pipefail
pkgs=(firewalld iptables dbus nftables iproute2 openssl openssh-server openssh-client systemd util-linux procps systemd-container curl aide aide-common clamav clamav-daemon clamav-freshclam)
# SELinux userland and Debian's policy: the selinux module's policy store tests (no kernel SELinux needed).
pkgs+=(selinux-utils policycoreutils semodule-utils policycoreutils-python-utils selinux-policy-default)
# The console's browser tests (test/console) drive Debian's chromium through playwright-core: browser
# downloads do not work here. A font so screenshots show text rather than boxes; certutil (libnss3-tools)
# to make the browser trust the test CA the way a user would (its NSS database), not by ignoring errors.
pkgs+=(chromium fonts-dejavu-core libnss3-tools)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  # policycoreutils writes SELINUX=permissive when there is no config; say what the kernel does
  # here instead (the tests never activate SELinux, they use a temporary config file).
  if [ ! -e /etc/selinux/config ]; then mkdir -p /etc/selinux && printf 'SELINUX=disabled\nSELINUXTYPE=default\n' >/etc/selinux/config; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # firewalld's maintainer scripts try to start the service; there is no systemd here to do it.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# firewalld must never run on the machine's own network: tests start it inside their own namespace.
if [ -x /usr/sbin/firewalld ] && [ -e /run/firewalld/firewalld.pid ]; then
  echo "warning: a firewalld is already running on this machine; tests start their own in a namespace" >&2
fi
# The clamav tests run clamscan (and their own clamd) on signatures they write: the packaged services
# would reach for the network (freshclam) or hold the official databases in memory (clamd).
if [ -d /run/systemd/system ]; then
  for unit in clamav-freshclam.service clamav-daemon.service clamav-daemon.socket; do
    systemctl is-enabled --quiet "$unit" 2>/dev/null && systemctl disable --now --quiet "$unit" || true
  done
fi
