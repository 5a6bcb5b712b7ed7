#!/usr/bin/env bash
# Pending (run.sh runs test_*.sh only): test_failover.sh with the 64 MiB
# stream over four links (r1 to r7) and its half-close answer. Run by hand:
#   WEFT_BUILD=build bash tests/mesh/pending_four_links.sh
MESH_FAR=1 exec bash "$(dirname "$0")/test_failover.sh"
