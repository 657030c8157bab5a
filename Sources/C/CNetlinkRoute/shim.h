/* CNetlinkRoute: libnl-route-3 (Debian libnl-route-3-dev): links, addresses, routes. */
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/nexthop.h>
