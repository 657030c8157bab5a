/* CNetlinkGenl: libnl-genl-3 (Debian libnl-genl-3-dev) and the WireGuard
 * generic netlink UAPI (WG_CMD_*, WGDEVICE_A_*, WGPEER_A_*; linux-libc-dev). */
#include <netlink/netlink.h>
#include <netlink/genl/genl.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/family.h>
#include <linux/wireguard.h>

/* CTRL_ATTR_MAX is an expression macro Swift cannot import. */
static inline int mg_ctrl_attr_max(void) { return CTRL_ATTR_MAX; }
