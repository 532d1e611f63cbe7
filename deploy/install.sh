#!/bin/sh
# Installs the SMX gateway on a Debian box as a hardened systemd service
# (README "Running on a small box"):
#
#   sudo sh install.sh smx_gateway-<version>-py3-none-any.whl [constraints.txt]
#
# /opt/smx: a venv with the wheel and its pinned dependencies (constraints.txt beside this
# script by default); /etc/smx/smx.toml: the example configuration with the box's paths
# (kept as it is when it exists: an update never overwrites the box's configuration);
# /var/lib/smx/{archive,pki}: the only paths the service writes; the system user smx in
# group dialout; the unit smx-gateway.service, enabled. Run again to update.
#
# --root DIR installs into DIR as if it were / (an image being prepared, or a test): no
# user is made, nothing is owned by it and systemctl is not called.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=""
if [ "${1:-}" = "--root" ]; then
    root=${2:?--root needs a directory}
    shift 2
fi
wheel=${1:?usage: install.sh [--root DIR] WHEEL [CONSTRAINTS]}
constraints=${2:-$here/constraints.txt}
[ -f "$wheel" ] || { echo "install.sh: no wheel at $wheel (make dist builds it)" >&2; exit 2; }
[ -f "$constraints" ] || { echo "install.sh: no constraints file at $constraints" >&2; exit 2; }

prefix=$root/opt/smx
etc=$root/etc/smx
state=$root/var/lib/smx
units=$root/etc/systemd/system

if [ -z "$root" ] && ! getent passwd smx >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/smx --no-create-home \
        --shell /usr/sbin/nologin --groups dialout smx
    echo "made the system user smx (group dialout: the meter's serial port)"
fi
owner() {  # owner and group smx on a real box
    [ -n "$root" ] || chown "$@"
}

python3 -m venv "$prefix"
"$prefix/bin/pip" install --quiet --disable-pip-version-check -c "$constraints" "$wheel"
echo "installed $("$prefix/bin/smx-gateway" --version) in $prefix"

install -d -m 0750 "$state" "$state/archive" "$state/pki"
owner smx:smx "$state" "$state/archive" "$state/pki"

install -d -m 0755 "$etc"
if [ -e "$etc/smx.toml" ]; then
    echo "kept $etc/smx.toml"
else
    # The example with the paths the unit lets the service write.
    "$prefix/bin/smx-gateway" example-config | sed \
        -e 's#^path = "var/archive"#path = "/var/lib/smx/archive"#' \
        -e 's#^pki = "certs"#pki = "/var/lib/smx/pki"#' \
        -e 's#^users = "certs/users"#users = "/var/lib/smx/pki/users"#' \
        -e 's#^node_cache = "var/cache"#node_cache = "/var/cache/smx"#' >"$etc/smx.toml.new"
    chmod 0640 "$etc/smx.toml.new"
    owner root:smx "$etc/smx.toml.new"
    mv "$etc/smx.toml.new" "$etc/smx.toml"
    echo "wrote $etc/smx.toml: set the meter (its url, protocol, password) there"
fi
"$prefix/bin/smx-gateway" check-config "$etc/smx.toml"

install -D -m 0644 "$here/smx-gateway.service" "$units/smx-gateway.service"
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable smx-gateway.service
    echo "enabled smx-gateway.service: systemctl start smx-gateway; journalctl -u smx-gateway -f"
fi
echo "before starting it: sudo -u smx $prefix/bin/smx-gateway doctor --config /etc/smx/smx.toml"
