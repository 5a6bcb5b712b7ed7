# Network namespaces for the multi-host mesh suite. Sourced; never run.
#
#   r1 ─┬─ r2 ─┬─ r4 ─┬─ r5 ─┬─ r7         two diamonds: every router pair of a
#       └─ r3 ─┘      └─ r6 ─┘             diamond has two disjoint paths
#
# Each router, edge and the controller has its own namespace, named
# "$TOPO_ID-NAME" (TOPO_ID is per run, so parallel runs do not clash).
# Addresses come from 198.18.0.0/15 (RFC 2544, benchmarking):
#   198.18.L.1/30 and .2/30   the veth pair of link L (router to router,
#                             router to edge)
#   198.19.0.N/32             router N's own address (on lo): it listens there
#                             for links and edges; only its neighbours and its
#                             edges get a route to it, via the link
#   198.19.255.0/24           management: a bridge in the controller's
#                             namespace; the controller is 198.19.255.1
# No namespace forwards (ip_forward stays 0), so a router reaches exactly its
# neighbours: the router config has no per-router link restriction, and an
# unreachable peer simply never links.

TOPO_ID=${TOPO_ID:-wm$$$RANDOM}
TOPO_NS=()
declare -A TOPO_ADDR TOPO_MGMT TOPO_LINKDEV
TOPO_L=0
TOPO_M=1

topo_ns() { printf '%s-%s' "$TOPO_ID" "$1"; }

topo_add_ns() {
    local ns
    ns=$(topo_ns "$1")
    ip netns add "$ns" || return 1
    TOPO_NS+=("$ns")
    ip -n "$ns" link set lo up
}

# topo_mgmt NAME: a veth from NAME's namespace to the management bridge.
topo_mgmt() {
    local ns c i
    ns=$(topo_ns "$1")
    c=$(topo_ns ctl)
    TOPO_M=$((TOPO_M + 1))
    i=$TOPO_M
    ip link add "m$i" netns "$ns" type veth peer name "mb$i" netns "$c" || return 1
    ip -n "$c" link set "mb$i" master br0 up
    ip -n "$ns" addr add "198.19.255.$i/24" dev "m$i"
    ip -n "$ns" link set "m$i" up
    TOPO_MGMT[$1]=198.19.255.$i
}

# topo_wire A B: a veth pair between A and B, each with a host route to the
# other's own address (routers: 198.19.0.N; an edge has none).
topo_wire() {
    local a=$1 b=$2 na nb l
    na=$(topo_ns "$a")
    nb=$(topo_ns "$b")
    TOPO_L=$((TOPO_L + 1))
    l=$TOPO_L
    ip link add "l$l" netns "$na" type veth peer name "l$l" netns "$nb" || return 1
    ip -n "$na" addr add "198.18.$l.1/30" dev "l$l"
    ip -n "$nb" addr add "198.18.$l.2/30" dev "l$l"
    ip -n "$na" link set "l$l" up
    ip -n "$nb" link set "l$l" up
    [ -n "${TOPO_ADDR[$b]:-}" ] && ip -n "$na" route add "${TOPO_ADDR[$b]}/32" via "198.18.$l.2"
    [ -n "${TOPO_ADDR[$a]:-}" ] && ip -n "$nb" route add "${TOPO_ADDR[$a]}/32" via "198.18.$l.1"
    TOPO_LINKDEV[$a-$b]=l$l
    TOPO_LINKDEV[$b-$a]=l$l
}

# topo_cut A B / topo_mend A B: the cable between A and B, as A's side sees it.
topo_cut() { ip -n "$(topo_ns "$1")" link set "${TOPO_LINKDEV[$1-$2]}" down; }
topo_mend() {
    ip -n "$(topo_ns "$1")" link set "${TOPO_LINKDEV[$1-$2]}" up
    # Routes via a device that went down are gone; put the host route back.
    local l=${TOPO_LINKDEV[$1-$2]#l} peer_ip
    if [ -n "${TOPO_ADDR[$2]:-}" ]; then
        peer_ip=$(ip -n "$(topo_ns "$1")" -4 -o addr show dev "l$l" | awk '{print $4}' | cut -d/ -f1)
        case $peer_ip in *.1) peer_ip=${peer_ip%.1}.2 ;; *) peer_ip=${peer_ip%.2}.1 ;; esac
        ip -n "$(topo_ns "$1")" route replace "${TOPO_ADDR[$2]}/32" via "$peer_ip"
    fi
}

# topo_up ROUTERS... -- LINKS(a-b)... -- EDGES(name@router)...
topo_up() {
    local n c i=0 a b
    c=$(topo_ns ctl)
    topo_add_ns ctl || return 1
    ip -n "$c" link add br0 type bridge && ip -n "$c" link set br0 up
    ip -n "$c" addr add 198.19.255.1/24 dev br0
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        i=$((i + 1))
        topo_add_ns "$1" || return 1
        TOPO_ADDR[$1]=198.19.0.$i
        ip -n "$(topo_ns "$1")" addr add "198.19.0.$i/32" dev lo
        topo_mgmt "$1" || return 1
        shift
    done
    shift
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        topo_wire "${1%-*}" "${1#*-}" || return 1
        shift
    done
    shift
    for n in "$@"; do
        topo_add_ns "${n%@*}" || return 1
        topo_mgmt "${n%@*}" || return 1
        topo_wire "${n#*@}" "${n%@*}" || return 1
    done
}

# topo_down: every process in our namespaces killed, the namespaces deleted
# (their veths go with them).
topo_down() {
    local ns pid
    for ns in "${TOPO_NS[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    done
    for ns in "${TOPO_NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    TOPO_NS=()
}

# nsx NAME CMD...: runs CMD in NAME's namespace.
nsx() {
    local ns
    ns=$(topo_ns "$1")
    shift
    ip netns exec "$ns" "$@"
}
