/* CNetlink: libnl-3 core (Debian libnl-3-dev): sockets, messages, attributes. */
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/msg.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/cache.h>
#include <netlink/addr.h>
#include <netlink/handlers.h>
