/* CLinuxShims: out-of-line helpers (see include/CLinuxShims.h for contracts). */
#define _GNU_SOURCE
#include "CLinuxShims.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <net/if.h>
#include <sys/eventfd.h>
#include <linux/virtio_net.h>

/* struct mg_mmsghdr must be bit-for-bit glibc's struct mmsghdr. */
_Static_assert(sizeof(struct mg_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr size");
_Static_assert(offsetof(struct mg_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "mmsghdr layout");
_Static_assert(MG_IFNAMSIZ == IFNAMSIZ, "IFNAMSIZ");
_Static_assert(MG_VIRTIO_NET_HDR_LEN == sizeof(struct virtio_net_hdr), "virtio_net_hdr size");
_Static_assert(MG_VIRTIO_NET_HDR_F_NEEDS_CSUM == VIRTIO_NET_HDR_F_NEEDS_CSUM && MG_VIRTIO_NET_HDR_GSO_NONE == VIRTIO_NET_HDR_GSO_NONE
               && MG_VIRTIO_NET_HDR_GSO_TCPV4 == VIRTIO_NET_HDR_GSO_TCPV4 && MG_VIRTIO_NET_HDR_GSO_TCPV6 == VIRTIO_NET_HDR_GSO_TCPV6
               && MG_VIRTIO_NET_HDR_GSO_ECN == VIRTIO_NET_HDR_GSO_ECN, "virtio_net_hdr constants");
_Static_assert(MG_MSG_TRUNC == MSG_TRUNC && MG_MSG_CTRUNC == MSG_CTRUNC && MG_MSG_WAITFORONE == MSG_WAITFORONE, "MSG_*");

/* Copies `name` into ifr_name; EINVAL when it does not fit with its NUL. */
static int set_ifr_name(struct ifreq *ifr, const char *name) {
    size_t n = strnlen(name, IFNAMSIZ);
    if (n == 0 || n >= IFNAMSIZ) { errno = EINVAL; return -1; }
    memcpy(ifr->ifr_name, name, n);
    ifr->ifr_name[n] = 0;
    return 0;
}

static void copy_name_out(const struct ifreq *ifr, char *out, size_t out_len) {
    if (out == NULL || out_len == 0) return;
    size_t n = strnlen(ifr->ifr_name, IFNAMSIZ);
    if (n >= out_len) n = out_len - 1;
    memcpy(out, ifr->ifr_name, n);
    out[n] = 0;
}

int mg_tun_set_iff(int fd, const char *name, int vnet_hdr, char *out_name, size_t out_len) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (set_ifr_name(&ifr, name) != 0) return -1;
    ifr.ifr_flags = (short)(IFF_TUN | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0));
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) return -1;
    copy_name_out(&ifr, out_name, out_len);
    return 0;
}

int mg_tun_set_offload(int fd, unsigned int flags) {
    return ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags);
}

int mg_tun_set_vnet_hdr_size(int fd, int size) {
    return ioctl(fd, TUNSETVNETHDRSZ, &size);
}

int mg_if_get_mtu(int sock, const char *name, int *mtu) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (set_ifr_name(&ifr, name) != 0) return -1;
    if (ioctl(sock, SIOCGIFMTU, &ifr) != 0) return -1;
    *mtu = ifr.ifr_mtu;
    return 0;
}

int mg_if_set_mtu(int sock, const char *name, int mtu) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (set_ifr_name(&ifr, name) != 0) return -1;
    ifr.ifr_mtu = mtu;
    return ioctl(sock, SIOCSIFMTU, &ifr);
}

int mg_if_get_up(int sock, const char *name, int *up) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (set_ifr_name(&ifr, name) != 0) return -1;
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) return -1;
    *up = (ifr.ifr_flags & IFF_UP) ? 1 : 0;
    return 0;
}

int mg_if_set_up(int sock, const char *name, int up) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (set_ifr_name(&ifr, name) != 0) return -1;
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) return -1;
    if (up) ifr.ifr_flags |= IFF_UP; else ifr.ifr_flags &= ~IFF_UP;
    return ioctl(sock, SIOCSIFFLAGS, &ifr);
}

int mg_recvmmsg(int fd, struct mg_mmsghdr *msgs, unsigned int vlen, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)msgs, vlen, flags, NULL);
}

int mg_sendmmsg(int fd, struct mg_mmsghdr *msgs, unsigned int vlen, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)msgs, vlen, flags);
}

int mg_ppoll(struct pollfd *fds, nfds_t nfds, int64_t timeout_ns) {
    if (timeout_ns < 0) return ppoll(fds, nfds, NULL, NULL);
    struct timespec ts = { .tv_sec = (time_t)(timeout_ns / 1000000000), .tv_nsec = (long)(timeout_ns % 1000000000) };
    return ppoll(fds, nfds, &ts, NULL);
}

int mg_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

#include <resolv.h>

int mg_res_query(const char *name, int type, unsigned char *answer, int anslen) {
    return res_query(name, C_IN, type, answer, anslen);
}
