/* CLinuxShims: the Linux facilities Swift cannot import directly, wrapped once.
 *
 * Swift's Clang importer drops function-like macros (TUNSETIFF is _IOW(...),
 * CMSG_FIRSTHDR/CMSG_NXTHDR/CMSG_DATA, the ifreq field aliases ifr_name and
 * ifr_flags) and does not see the _GNU_SOURCE-only declarations of glibc
 * (struct mmsghdr, recvmmsg, sendmmsg, ppoll). Each helper here turns one of
 * those into a plain prefixed function or constant. Functions return what the
 * syscall returns (-1 with errno set on failure) so the Swift layer
 * (Sources/MeshLinux) turns every failure into a thrown error; nothing here
 * retries, logs or allocates.
 *
 * References: tun(4) and Documentation/networking/tuntap.rst (TUNSETIFF,
 * IFF_TUN, IFF_NO_PI, IFF_VNET_HDR, TUNSETOFFLOAD), netdevice(7) (SIOCGIFMTU,
 * SIOCSIFMTU, SIOCGIFFLAGS, SIOCSIFFLAGS), recvmmsg(2), sendmmsg(2), cmsg(3),
 * udp(7) (UDP_SEGMENT, UDP_GRO), ipv6(7) (IPV6_V6ONLY, v4-mapped addresses).
 */
#ifndef CLINUXSHIMS_H
#define CLINUXSHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/ioctl.h>     /* _IOW() for the TUN request numbers: linux/if_tun.h does not include it */
#include <netinet/in.h>
#include <netinet/udp.h>   /* UDP_SEGMENT, UDP_GRO, SOL_UDP */
#include <linux/if_tun.h>  /* TUNSETIFF, IFF_TUN, IFF_NO_PI, IFF_VNET_HDR, TUN_F_* */
#include <sys/inotify.h>   /* inotify(7): trust and peer files watched for changes */

/* ---- Constants (plain int aliases import into Swift as Int32) ---------- */

#define MG_IFNAMSIZ 16              /* IFNAMSIZ: interface names are at most 15 bytes plus NUL */
#define MG_SOL_UDP SOL_UDP
#define MG_UDP_SEGMENT UDP_SEGMENT  /* udp(7): send-side GSO segment size (uint16 cmsg or sockopt) */
#define MG_UDP_GRO UDP_GRO          /* udp(7): receive coalesced datagrams, segment size in an int cmsg */
#define MG_SO_RCVBUFFORCE SO_RCVBUFFORCE
#define MG_SO_SNDBUFFORCE SO_SNDBUFFORCE
#define MG_SO_MARK SO_MARK
/* glibc declares the MSG_* flags as enum constants (and MSG_WAITFORONE only
 * under _GNU_SOURCE), which alias macros cannot re-export: spelled out here,
 * checked against glibc in shims.c. */
#define MG_MSG_TRUNC 0x20
#define MG_MSG_CTRUNC 0x08
#define MG_MSG_WAITFORONE 0x10000
#define MG_UIO_MAXIOV 1024          /* recvmmsg/sendmmsg accept at most UIO_MAXIOV messages per call */
#define MG_TUN_F_CSUM TUN_F_CSUM
#define MG_TUN_F_TSO4 TUN_F_TSO4
#define MG_TUN_F_TSO6 TUN_F_TSO6

/* struct virtio_net_hdr (linux/virtio_net.h), prefixed to every packet on a
 * TUN descriptor opened with IFF_VNET_HDR. Fields are in the host's byte
 * order (legacy virtio). Checked against the kernel header in shims.c. */
#define MG_VIRTIO_NET_HDR_LEN 10
#define MG_VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define MG_VIRTIO_NET_HDR_GSO_NONE 0
#define MG_VIRTIO_NET_HDR_GSO_TCPV4 1
#define MG_VIRTIO_NET_HDR_GSO_TCPV6 4
#define MG_VIRTIO_NET_HDR_GSO_ECN 0x80

/* ---- TUN (tun(4), Documentation/networking/tuntap.rst) ------------------ */

/* ioctl request numbers: _IOW/_IOR expressions do not import. */
static inline unsigned long mg_tunsetiff(void) { return TUNSETIFF; }
static inline unsigned long mg_tungetiff(void) { return TUNGETIFF; }
static inline unsigned long mg_tunsetoffload(void) { return TUNSETOFFLOAD; }
static inline unsigned long mg_tunsetvnethdrsz(void) { return TUNSETVNETHDRSZ; }

/* TUNSETIFF on an open /dev/net/tun descriptor: attaches it to a TUN
 * interface (IFF_TUN | IFF_NO_PI, plus IFF_VNET_HDR when `vnet_hdr` != 0).
 * `name` may hold a `%d` template ("mg%d") and must be shorter than
 * MG_IFNAMSIZ bytes (else EINVAL). The kernel's chosen name is copied into
 * `out_name` (NUL-terminated, at most `out_len` bytes). Returns 0 or -1/errno. */
int mg_tun_set_iff(int fd, const char *name, int vnet_hdr, char *out_name, size_t out_len);

/* TUNSETOFFLOAD with TUN_F_* bits (only meaningful with IFF_VNET_HDR). */
int mg_tun_set_offload(int fd, unsigned int flags);

/* TUNSETVNETHDRSZ: the size of the virtio_net_hdr prefixed to every packet. */
int mg_tun_set_vnet_hdr_size(int fd, int size);

/* ---- Interface ioctls on any AF_INET datagram socket (netdevice(7)) ----- */

int mg_if_get_mtu(int sock, const char *name, int *mtu);           /* SIOCGIFMTU */
int mg_if_set_mtu(int sock, const char *name, int mtu);            /* SIOCSIFMTU */
/* SIOCGIFFLAGS; `*up` is set to 1 when IFF_UP is set, else 0. */
int mg_if_get_up(int sock, const char *name, int *up);
/* SIOCGIFFLAGS then SIOCSIFFLAGS with IFF_UP set or cleared; other flags kept. */
int mg_if_set_up(int sock, const char *name, int up);

/* ---- recvmmsg / sendmmsg (recvmmsg(2), sendmmsg(2)) --------------------- */

/* Layout-identical to glibc's `struct mmsghdr`, which Swift cannot see (it is
 * declared only under _GNU_SOURCE). shims.c checks the layout statically. */
struct mg_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

/* recvmmsg(2) without a timeout; pass MG_MSG_WAITFORONE so a blocking socket
 * returns after the first datagram instead of waiting for all `vlen`. */
int mg_recvmmsg(int fd, struct mg_mmsghdr *msgs, unsigned int vlen, int flags);
int mg_sendmmsg(int fd, struct mg_mmsghdr *msgs, unsigned int vlen, int flags);

/* ---- Control messages (cmsg(3); udp(7) UDP_GRO / UDP_SEGMENT) ------------ */

/* Bytes of control buffer for one UDP_GRO (int) or UDP_SEGMENT (uint16_t)
 * control message: CMSG_SPACE(sizeof(int)). */
static inline size_t mg_cmsg_space_udp(void) { return CMSG_SPACE(sizeof(int)); }

/* The GRO segment size a received message carries (UDP_GRO cmsg at SOL_UDP),
 * or 0 when the datagram was not coalesced. Walks the message's control data
 * with CMSG_FIRSTHDR/CMSG_NXTHDR; never reads outside msg_controllen. */
static inline int mg_cmsg_udp_gro_size(struct msghdr *msg) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int size;
            __builtin_memcpy(&size, CMSG_DATA(c), sizeof size);
            return size > 0 ? size : 0;
        }
    }
    return 0;
}

/* Writes one UDP_SEGMENT control message (uint16_t segment size) into
 * `control` (at least mg_cmsg_space_udp() bytes, suitably aligned) and points
 * `msg` at it. */
static inline void mg_cmsg_put_udp_segment(struct msghdr *msg, void *control, uint16_t segment_size) {
    __builtin_memset(control, 0, CMSG_SPACE(sizeof(uint16_t)));
    msg->msg_control = control;
    msg->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
    struct cmsghdr *c = CMSG_FIRSTHDR(msg);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    __builtin_memcpy(CMSG_DATA(c), &segment_size, sizeof segment_size);
}

/* ---- Socket addresses (ipv6(7): v4-mapped ::ffff:a.b.c.d) ---------------- */

/* An address as two host-order 64-bit halves of its 16 network-order bytes
 * (IPv6Address.high/low); IPv4 is carried in the low 32 bits of `lo`. */

/* Fills a sockaddr_in6 (zeroed first; no flow info, scope 0). Returns its size. */
static inline socklen_t mg_sockaddr_in6_set(void *sa, uint64_t hi, uint64_t lo, uint16_t port) {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)sa;
    __builtin_memset(s, 0, sizeof *s);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    uint64_t h = __builtin_bswap64(hi), l = __builtin_bswap64(lo);
    __builtin_memcpy(&s->sin6_addr.s6_addr[0], &h, 8);
    __builtin_memcpy(&s->sin6_addr.s6_addr[8], &l, 8);
    return (socklen_t)sizeof *s;
}

/* Fills a sockaddr_in (zeroed first). Returns its size. */
static inline socklen_t mg_sockaddr_in_set(void *sa, uint32_t addr, uint16_t port) {
    struct sockaddr_in *s = (struct sockaddr_in *)sa;
    __builtin_memset(s, 0, sizeof *s);
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    s->sin_addr.s_addr = htonl(addr);
    return (socklen_t)sizeof *s;
}

/* Reads an AF_INET or AF_INET6 address of `len` bytes. Returns the family
 * (AF_INET: the address is in the low 32 bits of *lo, *hi = 0) or -1 when the
 * family is neither or `len` is too short. */
static inline int mg_sockaddr_get(const void *sa, socklen_t len, uint64_t *hi, uint64_t *lo, uint16_t *port) {
    if (len >= (socklen_t)sizeof(struct sockaddr_in6) && ((const struct sockaddr *)sa)->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        uint64_t h, l;
        __builtin_memcpy(&h, &s->sin6_addr.s6_addr[0], 8);
        __builtin_memcpy(&l, &s->sin6_addr.s6_addr[8], 8);
        *hi = __builtin_bswap64(h); *lo = __builtin_bswap64(l); *port = ntohs(s->sin6_port);
        return AF_INET6;
    }
    if (len >= (socklen_t)sizeof(struct sockaddr_in) && ((const struct sockaddr *)sa)->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        *hi = 0; *lo = ntohl(s->sin_addr.s_addr); *port = ntohs(s->sin_port);
        return AF_INET;
    }
    return -1;
}

/* Rewrites a stored address in place for a socket of `family`: on an AF_INET
 * socket a v4-mapped sockaddr_in6 becomes a sockaddr_in. Returns the length to
 * pass as msg_namelen, or 0 when the address cannot be sent on that socket
 * (the kernel then refuses that one datagram). `sa` holds a sockaddr_in6. */
static inline socklen_t mg_sockaddr_prepare(void *sa, int family) {
    int f = ((const struct sockaddr *)sa)->sa_family;
    if (f == AF_INET6 && family == AF_INET) {
        uint64_t hi, lo; uint16_t port;
        mg_sockaddr_get(sa, sizeof(struct sockaddr_in6), &hi, &lo, &port);
        if (hi != 0 || (lo >> 32) != 0xffff) return 0;
        return mg_sockaddr_in_set(sa, (uint32_t)lo, port);
    }
    if (f == AF_INET && family == AF_INET6) {
        uint64_t hi, lo; uint16_t port;
        mg_sockaddr_get(sa, sizeof(struct sockaddr_in), &hi, &lo, &port);
        return mg_sockaddr_in6_set(sa, 0, 0xffff00000000ull | lo, port);
    }
    if (f == AF_INET6) return (socklen_t)sizeof(struct sockaddr_in6);
    if (f == AF_INET) return (socklen_t)sizeof(struct sockaddr_in);
    return 0;
}

/* ---- Waiting and waking ---------------------------------------------------- */

/* ppoll(2) with a timeout in nanoseconds; a negative timeout waits forever. */
int mg_ppoll(struct pollfd *fds, nfds_t nfds, int64_t timeout_ns);

/* eventfd(2) with EFD_NONBLOCK | EFD_CLOEXEC, initial value 0. */
int mg_eventfd(void);

/* DNS (resolver(3)): res_query for class IN; returns the answer length or -1.
 * In a header only as a declaration: <resolv.h> renames symbols with macros. */
int mg_res_query(const char *name, int type, unsigned char *answer, int anslen);
enum { MG_DNS_TYPE_TXT = 16, MG_DNS_TYPE_SRV = 33 };

#endif
