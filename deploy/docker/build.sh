#!/usr/bin/env bash
# Builds weft's container images offline: static binaries made on this host, copied
# into FROM-scratch images (no registry is needed, nothing is pulled).
#   deploy/docker/build.sh [--demo] [--tag TAG]
#     --demo   also the demo images the compose network uses: weft/demo-http
#              (busybox httpd) and weft/demo-mqtt (mosquitto broker and clients)
#   WEFT_STATIC_BUILD  meson build dir for the static binaries (default build-static)
# Prints each image's size in bytes. Needs a running docker daemon.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/deploy/docker"
tag=latest
demo=0
while [ $# -gt 0 ]; do
    case $1 in
        --demo) demo=1 ;;
        --tag) tag=${2:?--tag needs a value}; shift ;;
        *) echo "usage: deploy/docker/build.sh [--demo] [--tag TAG]" >&2; exit 2 ;;
    esac
    shift
done
bdir="$root/${WEFT_STATIC_BUILD:-build-static}"

# Debian ships libuv's archive as libuv_a.a; libuv.pc says -luv, so a static link
# needs a libuv.a on the search path.
static_binaries() {
    local libdir
    libdir=$(pkg-config --variable=libdir libuv)
    mkdir -p "$bdir/staticlibs"
    ln -sf "$libdir/libuv_a.a" "$bdir/staticlibs/libuv.a"
    if [ ! -f "$bdir/build.ninja" ]; then
        meson setup "$bdir" "$root" -Dprefer_static=true -Ddefault_library=static \
            "-Dc_link_args=['-static','-L$bdir/staticlibs']" \
            -Dbuildtype=release -Db_lto=true -Dstrip=true >/dev/null
    fi
    ninja -C "$bdir" controller/weft-controller router/weft-router edge/weft-edge cli/weft >/dev/null
    mkdir -p "$bdir/deploy"
    for t in entrypoint:weft-entry health:weft-health; do
        ${CC:-cc} -std=gnu11 -O2 -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes \
            -Wmissing-prototypes -Werror -D_FORTIFY_SOURCE=2 -static -s \
            -o "$bdir/deploy/${t#*:}" "$root/deploy/${t%%:*}.c"
    done
}

# A context: bin/ with the stripped binaries, rootfs/, and data/ (the volume's
# initial, empty content, owned by 65532 through COPY --chown).
context() {
    local ctx=$1; shift
    mkdir -p "$ctx/bin" "$ctx/rootfs/tmp" "$ctx/data"
    chmod 1777 "$ctx/rootfs/tmp"
    cp -r "$here/rootfs/." "$ctx/rootfs/"
    cp "$bdir/deploy/weft-entry" "$bdir/deploy/weft-health" "$ctx/bin/"
    for b in "$@"; do strip -o "$ctx/bin/$(basename "$b")" "$bdir/$b"; done
}

image() {
    local name=$1 dockerfile=$2 ctx=$3
    cp "$dockerfile" "$ctx/Dockerfile"
    docker build -q -t "weft/$name:$tag" "$ctx" >"$ctx.log" 2>&1 || { cat "$ctx.log" >&2; return 1; }
    echo "weft/$name:$tag $(docker image inspect --format '{{.Size}}' "weft/$name:$tag")"
}

# Copies a dynamically linked program and the libraries ldd names (and the loader).
copy_with_libs() {
    local dest=$1 prog=$2 lib
    mkdir -p "$dest/usr/bin"
    cp -L "$prog" "$dest/usr/bin/"
    for lib in $(ldd "$prog" | grep -o '/[^ ]*'); do
        mkdir -p "$dest$(dirname "$lib")"
        cp -L "$lib" "$dest$lib"
    done
}

demo_images() {
    local ctx=$1 busybox
    busybox=$(command -v busybox)
    file -L "$busybox" | grep -q 'statically linked' || {
        echo "build.sh: $busybox is not static; install busybox-static (scripts/deps.sh docker)" >&2
        exit 1
    }
    mkdir -p "$ctx/http/rootfs/bin" "$ctx/http/rootfs/www" "$ctx/http/rootfs/tmp"
    cp -r "$here/rootfs/." "$ctx/http/rootfs/"
    cp "$busybox" "$ctx/http/rootfs/bin/busybox"
    cp -r "$here/demo/www/." "$ctx/http/rootfs/www/"
    # A deterministic 64 MiB file for transfer checks (its digest is known on the host).
    head -c 67108864 /dev/zero | openssl enc -aes-128-ctr -K 000102030405060708090a0b0c0d0e0f \
        -iv 0 -nosalt 2>/dev/null >"$ctx/http/rootfs/www/blob.bin"
    image demo-http "$here/demo/Dockerfile.http" "$ctx/http"

    mkdir -p "$ctx/mqtt/rootfs/bin" "$ctx/mqtt/rootfs/etc/mosquitto" "$ctx/mqtt/rootfs/tmp"
    cp -r "$here/rootfs/." "$ctx/mqtt/rootfs/"
    cp "$busybox" "$ctx/mqtt/rootfs/bin/busybox"
    cp "$here/demo/mosquitto.conf" "$ctx/mqtt/rootfs/etc/mosquitto/"
    for p in /usr/sbin/mosquitto /usr/bin/mosquitto_pub /usr/bin/mosquitto_sub; do
        copy_with_libs "$ctx/mqtt/rootfs" "$p"
    done
    image demo-mqtt "$here/demo/Dockerfile.mqtt" "$ctx/mqtt"
}

static_binaries
work=$(mktemp -d "${TMPDIR:-/tmp}/weft-images.XXXXXX")
trap 'rm -rf "$work"' EXIT
context "$work/controller" controller/weft-controller cli/weft
image controller "$here/Dockerfile.controller" "$work/controller"
context "$work/router" router/weft-router
image router "$here/Dockerfile.router" "$work/router"
context "$work/edge" edge/weft-edge
image edge "$here/Dockerfile.edge" "$work/edge"
[ "$demo" = 1 ] && demo_images "$work/demo"
exit 0
