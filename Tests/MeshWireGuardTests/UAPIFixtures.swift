// UAPI fixtures captured from the real tools on Debian 12 (bookworm), as root:
//
//   wg*  bytes that `wg` (wireguard-tools v1.0.20210914) SENT for the command
//        shown, logged by a fake UAPI socket: a python3 AF_UNIX server at
//        /var/run/wireguard/IF.sock that records every byte of a connection
//        and answers `errno=0` (and, to `get=1`, a canned reply);
//   go*  bytes that `wireguard-go` v0.0.20220316 ANSWERED on its UAPI socket,
//        run as `WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 ip netns exec
//        NS wireguard-go -f IF` in a throwaway network namespace, configured
//        with `wg set`, then queried by a python3 client sending `get=1` and
//        the blank line (or the refused request named), recording the
//        reply. Idle device: no handshakes, no traffic, so those fields are 0.
//
// Bytes are kept exactly, one string per line including its newline.
//
// The keys are throwaway test keys generated for these captures.
//   IF   the interface name (unique per capture run; not part of the bytes)
//   dev  private d00c9748…2177, public 397b1f0a…bb5f (OXsfCh6Z…u18=)
//   P1   public f325f215…ff34 (8yXyFe7c…/zQ=), psk1 a8046c50…6659
//   P2   public ff3b4664…772d (/ztGZAA+…dy0=), psk2 300b92df…5963
//   P3   public e69fd9d7…464c (5p/Z159y…Rkw=)

enum UAPIFixtures {
    static func text(_ lines: String...) -> String { lines.joined() }

    static let devPrivateHex = "d00c9748b15977cbfdcc5a9b7168b8900bc85ec5e8bab9e92fa73161a98d2177"
    static let devPublicBase64 = "OXsfCh6Zf9cP1+ygXafXONrFg4tBy4B9AQSE/uETu18="
    static let p1Hex = "f325f215eedc76ca1b67df59a8bce442bccb08fca89e2a61cb06ed2d59eeff34"
    static let p1Base64 = "8yXyFe7cdsobZ99ZqLzkQrzLCPyoniphywbtLVnu/zQ="
    static let p2Hex = "ff3b4664003e89165a738903f3b0e1759c38c11b74243f01ca257967e7f7772d"
    static let p2Base64 = "/ztGZAA+iRZac4kD87DhdZw4wRt0JD8ByiV5Z+f3dy0="
    static let p3Hex = "e69fd9d79f721443dde2c6fe71417f1e50404455738224f8fc02100d4b85464c"
    static let p3Base64 = "5p/Z159yFEPd4sb+cUF/HlBARFVzgiT4/AIQDUuFRkw="
    static let psk1Hex = "a8046c50fea3788a1274a6823c24216b8d736d025af4db32f091718cdc896659"
    static let psk1Base64 = "qARsUP6jeIoSdKaCPCQha41zbQJa9Nsy8JFxjNyJZlk="
    static let psk2Hex = "300b92df3aa06b67298ee2fb47059ce2d3518edbbb4a91c713eff2b1ce205963"

    /// The file given to `wg setconf` and `wg addconf` (keys in base64 there).
    static let setconfFile = """
        [Interface]
        PrivateKey = <dev private key>
        ListenPort = 51820
        FwMark = 0x10

        [Peer]
        PublicKey = 8yXyFe7cdsobZ99ZqLzkQrzLCPyoniphywbtLVnu/zQ=
        PresharedKey = <psk1>
        Endpoint = 192.0.2.1:51820
        AllowedIPs = 10.0.0.0/24, fd00::/64

        [Peer]
        PublicKey = /ztGZAA+iRZac4kD87DhdZw4wRt0JD8ByiV5Z+f3dy0=
        Endpoint = [2001:db8::1]:51820
        PersistentKeepalive = 25
        AllowedIPs = 10.0.2.0/24, fd00:2::/64, 0.0.0.0/0
        """

    /// The file given to `wg syncconf`.
    static let syncconfFile = """
        [Interface]
        PrivateKey = <dev private key>
        ListenPort = 51820

        [Peer]
        PublicKey = 8yXyFe7cdsobZ99ZqLzkQrzLCPyoniphywbtLVnu/zQ=
        Endpoint = 192.0.2.1:51820
        AllowedIPs = 10.0.0.0/24

        [Peer]
        PublicKey = /ztGZAA+iRZac4kD87DhdZw4wRt0JD8ByiV5Z+f3dy0=
        PresharedKey = <psk2>
        Endpoint = [2001:db8::1]:51820
        AllowedIPs = 10.0.2.0/24
        """

    /// What the fake socket answered to `wg syncconf`'s `get=1`: P1 and P3.
    static let syncconfCannedGet = text(
        "private_key=d00c9748b15977cbfdcc5a9b7168b8900bc85ec5e8bab9e92fa73161a98d2177\n",
        "listen_port=51820\n",
        "public_key=f325f215eedc76ca1b67df59a8bce442bccb08fca89e2a61cb06ed2d59eeff34\n",
        "preshared_key=a8046c50fea3788a1274a6823c24216b8d736d025af4db32f091718cdc896659\n",
        "protocol_version=1\n",
        "endpoint=192.0.2.1:51820\n",
        "last_handshake_time_sec=0\n",
        "last_handshake_time_nsec=0\n",
        "tx_bytes=0\n",
        "rx_bytes=0\n",
        "persistent_keepalive_interval=0\n",
        "allowed_ip=10.0.0.0/24\n",
        "public_key=e69fd9d79f721443dde2c6fe71417f1e50404455738224f8fc02100d4b85464c\n",
        "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n",
        "protocol_version=1\n",
        "last_handshake_time_sec=0\n",
        "last_handshake_time_nsec=0\n",
        "tx_bytes=0\n",
        "rx_bytes=0\n",
        "persistent_keepalive_interval=0\n",
        "allowed_ip=10.0.3.0/24\n",
        "errno=0\n",
        "\n")

    // MARK: - What wg sent

    /// `wg set IF private-key dev.key listen-port 51820 fwmark 0x10 peer P1 preshared-key psk1.key endpoint 192.0.2.1:51820 persistent-keepalive 25 allowed-ips 10.0.0.0/24,fd00::/64`
    static let wgSetFull = text(
        "set=1\n",
        "private_key=d00c9748b15977cbfdcc5a9b7168b8900bc85ec5e8bab9e92fa73161a98d2177\n",
        "listen_port=51820\n",
        "fwmark=16\n",
        "public_key=f325f215eedc76ca1b67df59a8bce442bccb08fca89e2a61cb06ed2d59eeff34\n",
        "preshared_key=a8046c50fea3788a1274a6823c24216b8d736d025af4db32f091718cdc896659\n",
        "endpoint=192.0.2.1:51820\n",
        "persistent_keepalive_interval=25\n",
        "replace_allowed_ips=true\n",
        "allowed_ip=10.0.0.0/24\n",
        "allowed_ip=fd00::/64\n",
        "\n")

    /// `wg set IF peer P2 remove`
    static let wgSetRemove = text(
        "set=1\n",
        "public_key=ff3b4664003e89165a738903f3b0e1759c38c11b74243f01ca257967e7f7772d\n",
        "remove=true\n",
        "\n")

    /// `wg setconf IF setconf.conf` (see `setconfFile`)
    static let wgSetconf = text(
        "set=1\n",
        "private_key=d00c9748b15977cbfdcc5a9b7168b8900bc85ec5e8bab9e92fa73161a98d2177\n",
        "listen_port=51820\n",
        "fwmark=16\n",
        "replace_peers=true\n",
        "public_key=f325f215eedc76ca1b67df59a8bce442bccb08fca89e2a61cb06ed2d59eeff34\n",
        "preshared_key=a8046c50fea3788a1274a6823c24216b8d736d025af4db32f091718cdc896659\n",
        "endpoint=192.0.2.1:51820\n",
        "replace_allowed_ips=true\n",
        "allowed_ip=10.0.0.0/24\n",
        "allowed_ip=fd00::/64\n",
        "public_key=ff3b4664003e89165a738903f3b0e1759c38c11b74243f01ca257967e7f7772d\n",
        "endpoint=[2001:db8::1]:51820\n",
        "persistent_keepalive_interval=25\n",
        "replace_allowed_ips=true\n",
        "allowed_ip=10.0.2.0/24\n",
        "allowed_ip=fd00:2::/64\n",
        "allowed_ip=0.0.0.0/0\n",
        "\n")

    /// `wg syncconf IF syncconf.conf`, first request: it reads the device (the fake answered `syncconfCannedGet`)
    static let wgSyncconfGet = text(
        "get=1\n",
        "\n")

    /// `wg syncconf IF syncconf.conf`, second request: the difference (see `syncconfFile`); P3 is not in the file, so it is removed
    static let wgSyncconfSet = text(
        "set=1\n",
        "private_key=d00c9748b15977cbfdcc5a9b7168b8900bc85ec5e8bab9e92fa73161a98d2177\n",
        "listen_port=51820\n",
        "fwmark=0\n",
        "public_key=e69fd9d79f721443dde2c6fe71417f1e50404455738224f8fc02100d4b85464c\n",
        "remove=true\n",
        "public_key=f325f215eedc76ca1b67df59a8bce442bccb08fca89e2a61cb06ed2d59eeff34\n",
        "endpoint=192.0.2.1:51820\n",
        "replace_allowed_ips=true\n",
        "allowed_ip=10.0.0.0/24\n",
        "public_key=ff3b4664003e89165a738903f3b0e1759c38c11b74243f01ca257967e7f7772d\n",
        "preshared_key=300b92df3aa06b67298ee2fb47059ce2d3518edbbb4a91c713eff2b1ce205963\n",
        "endpoint=[2001:db8::1]:51820\n",
        "replace_allowed_ips=true\n",
        "allowed_ip=10.0.2.0/24\n",
        "\n")

    /// `wg set IF peer P1 allowed-ips ''`
    static let wgSetNoAllowedIPs = text(
        "set=1\n",
        "public_key=f325f215eedc76ca1b67df59a8bce442bccb08fca89e2a61cb06ed2d59eeff34\n",
        "replace_allowed_ips=true\n",
        "\n")

    /// `wg set IF peer P1 preshared-key /dev/null persistent-keepalive off endpoint '[2001:db8::1]:51820'`
    static let wgSetClearPeerFields = text(
        "set=1\n",
        "public_key=f325f215eedc76ca1b67df59a8bce442bccb08fca89e2a61cb06ed2d59eeff34\n",
        "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n",
        "endpoint=[2001:db8::1]:51820\n",
        "persistent_keepalive_interval=0\n",
        "\n")

    /// `wg set IF listen-port 0 fwmark off private-key /dev/null`
    static let wgSetClearDevice = text(
        "set=1\n",
        "private_key=0000000000000000000000000000000000000000000000000000000000000000\n",
        "listen_port=0\n",
        "fwmark=0\n",
        "\n")

    /// `wg addconf IF setconf.conf`
    static let wgAddconf = text(
        "set=1\n",
        "private_key=d00c9748b15977cbfdcc5a9b7168b8900bc85ec5e8bab9e92fa73161a98d2177\n",
        "listen_port=51820\n",
        "fwmark=16\n",
        "public_key=f325f215eedc76ca1b67df59a8bce442bccb08fca89e2a61cb06ed2d59eeff34\n",
        "preshared_key=a8046c50fea3788a1274a6823c24216b8d736d025af4db32f091718cdc896659\n",
        "endpoint=192.0.2.1:51820\n",
        "replace_allowed_ips=true\n",
        "allowed_ip=10.0.0.0/24\n",
        "allowed_ip=fd00::/64\n",
        "public_key=ff3b4664003e89165a738903f3b0e1759c38c11b74243f01ca257967e7f7772d\n",
        "endpoint=[2001:db8::1]:51820\n",
        "persistent_keepalive_interval=25\n",
        "replace_allowed_ips=true\n",
        "allowed_ip=10.0.2.0/24\n",
        "allowed_ip=fd00:2::/64\n",
        "allowed_ip=0.0.0.0/0\n",
        "\n")

    /// `wg set IF peer P3 allowed-ips 10.0.0.1/24,::ffff:192.0.2.7/128,2001:DB8:0:0:0:0:0:1/128`
    static let wgSetOddPrefixes = text(
        "set=1\n",
        "public_key=e69fd9d79f721443dde2c6fe71417f1e50404455738224f8fc02100d4b85464c\n",
        "replace_allowed_ips=true\n",
        "allowed_ip=10.0.0.1/24\n",
        "allowed_ip=::ffff:192.0.2.7/128\n",
        "allowed_ip=2001:db8::1/128\n",
        "\n")

    /// `wg showconf IF > rt.conf; wg setconf IF rt.conf` with the socket serving `UAPI.formatGet` of the round-trip snapshot (see UAPIRoundTripTests)
    static let wgSetconfOfShowconf = text(
        "set=1\n",
        "private_key=d00c9748b15977cbfdcc5a9b7168b8900bc85ec5e8bab9e92fa73161a98d2177\n",
        "listen_port=51820\n",
        "fwmark=16\n",
        "replace_peers=true\n",
        "public_key=f325f215eedc76ca1b67df59a8bce442bccb08fca89e2a61cb06ed2d59eeff34\n",
        "preshared_key=a8046c50fea3788a1274a6823c24216b8d736d025af4db32f091718cdc896659\n",
        "endpoint=192.0.2.1:51820\n",
        "persistent_keepalive_interval=25\n",
        "replace_allowed_ips=true\n",
        "allowed_ip=10.0.0.0/24\n",
        "allowed_ip=fd00::/64\n",
        "public_key=ff3b4664003e89165a738903f3b0e1759c38c11b74243f01ca257967e7f7772d\n",
        "endpoint=[2001:db8::1]:51820\n",
        "replace_allowed_ips=true\n",
        "allowed_ip=10.0.2.0/24\n",
        "allowed_ip=fd00:2::/64\n",
        "allowed_ip=0.0.0.0/0\n",
        "public_key=e69fd9d79f721443dde2c6fe71417f1e50404455738224f8fc02100d4b85464c\n",
        "endpoint=[::ffff:192.0.2.9]:51820\n",
        "replace_allowed_ips=true\n",
        "allowed_ip=::ffff:192.0.2.7/128\n",
        "\n")

    // MARK: - What wireguard-go answered

    /// `get=1` on a fresh device: no key, a random listen port
    static let goGetFresh = text(
        "listen_port=60611\n",
        "errno=0\n",
        "\n")

    /// `get=1` after `wg set IF private-key dev.key listen-port 51820 fwmark 0x10 peer P1 preshared-key psk1.key endpoint 192.0.2.1:51820 persistent-keepalive 25 allowed-ips 10.0.0.0/24,fd00::/64 peer P2 endpoint '[2001:db8::1]:51820' allowed-ips 10.0.2.0/24,fd00:2::/64`
    static let goGetTwoPeers = text(
        "private_key=d00c9748b15977cbfdcc5a9b7168b8900bc85ec5e8bab9e92fa73161a98d2177\n",
        "listen_port=51820\n",
        "fwmark=16\n",
        "public_key=f325f215eedc76ca1b67df59a8bce442bccb08fca89e2a61cb06ed2d59eeff34\n",
        "preshared_key=a8046c50fea3788a1274a6823c24216b8d736d025af4db32f091718cdc896659\n",
        "protocol_version=1\n",
        "endpoint=192.0.2.1:51820\n",
        "last_handshake_time_sec=0\n",
        "last_handshake_time_nsec=0\n",
        "tx_bytes=0\n",
        "rx_bytes=0\n",
        "persistent_keepalive_interval=25\n",
        "allowed_ip=10.0.0.0/24\n",
        "allowed_ip=fd00::/64\n",
        "public_key=ff3b4664003e89165a738903f3b0e1759c38c11b74243f01ca257967e7f7772d\n",
        "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n",
        "protocol_version=1\n",
        "endpoint=[2001:db8::1]:51820\n",
        "last_handshake_time_sec=0\n",
        "last_handshake_time_nsec=0\n",
        "tx_bytes=0\n",
        "rx_bytes=0\n",
        "persistent_keepalive_interval=0\n",
        "allowed_ip=10.0.2.0/24\n",
        "allowed_ip=fd00:2::/64\n",
        "errno=0\n",
        "\n")

    /// `get=1` after also `wg set IF peer P3 endpoint '[::ffff:192.0.2.9]:51820' allowed-ips 10.0.3.128/25,10.0.3.0/25,::ffff:192.0.2.7/128,2001:db8::/32`
    static let goGetThreePeers = text(
        "private_key=d00c9748b15977cbfdcc5a9b7168b8900bc85ec5e8bab9e92fa73161a98d2177\n",
        "listen_port=51820\n",
        "fwmark=16\n",
        "public_key=f325f215eedc76ca1b67df59a8bce442bccb08fca89e2a61cb06ed2d59eeff34\n",
        "preshared_key=a8046c50fea3788a1274a6823c24216b8d736d025af4db32f091718cdc896659\n",
        "protocol_version=1\n",
        "endpoint=192.0.2.1:51820\n",
        "last_handshake_time_sec=0\n",
        "last_handshake_time_nsec=0\n",
        "tx_bytes=0\n",
        "rx_bytes=0\n",
        "persistent_keepalive_interval=25\n",
        "allowed_ip=10.0.0.0/24\n",
        "allowed_ip=fd00::/64\n",
        "public_key=ff3b4664003e89165a738903f3b0e1759c38c11b74243f01ca257967e7f7772d\n",
        "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n",
        "protocol_version=1\n",
        "endpoint=[2001:db8::1]:51820\n",
        "last_handshake_time_sec=0\n",
        "last_handshake_time_nsec=0\n",
        "tx_bytes=0\n",
        "rx_bytes=0\n",
        "persistent_keepalive_interval=0\n",
        "allowed_ip=10.0.2.0/24\n",
        "allowed_ip=fd00:2::/64\n",
        "public_key=e69fd9d79f721443dde2c6fe71417f1e50404455738224f8fc02100d4b85464c\n",
        "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n",
        "protocol_version=1\n",
        "endpoint=[::ffff:192.0.2.9]:51820\n",
        "last_handshake_time_sec=0\n",
        "last_handshake_time_nsec=0\n",
        "tx_bytes=0\n",
        "rx_bytes=0\n",
        "persistent_keepalive_interval=0\n",
        "allowed_ip=10.0.3.128/25\n",
        "allowed_ip=10.0.3.0/25\n",
        "allowed_ip=::ffff:192.0.2.7/128\n",
        "allowed_ip=2001:db8::/32\n",
        "errno=0\n",
        "\n")

    /// `get=1` after `set=1` `private_key=<zeros>` `fwmark=0`: no private_key or fwmark line
    static let goGetAfterClear = text(
        "listen_port=51820\n",
        "public_key=f325f215eedc76ca1b67df59a8bce442bccb08fca89e2a61cb06ed2d59eeff34\n",
        "preshared_key=a8046c50fea3788a1274a6823c24216b8d736d025af4db32f091718cdc896659\n",
        "protocol_version=1\n",
        "endpoint=192.0.2.1:51820\n",
        "last_handshake_time_sec=0\n",
        "last_handshake_time_nsec=0\n",
        "tx_bytes=0\n",
        "rx_bytes=0\n",
        "persistent_keepalive_interval=25\n",
        "allowed_ip=10.0.0.0/24\n",
        "allowed_ip=fd00::/64\n",
        "public_key=ff3b4664003e89165a738903f3b0e1759c38c11b74243f01ca257967e7f7772d\n",
        "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n",
        "protocol_version=1\n",
        "endpoint=[2001:db8::1]:51820\n",
        "last_handshake_time_sec=0\n",
        "last_handshake_time_nsec=0\n",
        "tx_bytes=0\n",
        "rx_bytes=0\n",
        "persistent_keepalive_interval=0\n",
        "allowed_ip=10.0.2.0/24\n",
        "allowed_ip=fd00:2::/64\n",
        "public_key=e69fd9d79f721443dde2c6fe71417f1e50404455738224f8fc02100d4b85464c\n",
        "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n",
        "protocol_version=1\n",
        "endpoint=[::ffff:192.0.2.9]:51820\n",
        "last_handshake_time_sec=0\n",
        "last_handshake_time_nsec=0\n",
        "tx_bytes=0\n",
        "rx_bytes=0\n",
        "persistent_keepalive_interval=0\n",
        "allowed_ip=10.0.3.128/25\n",
        "allowed_ip=10.0.3.0/25\n",
        "allowed_ip=::ffff:192.0.2.7/128\n",
        "allowed_ip=2001:db8::/32\n",
        "errno=0\n",
        "\n")

    /// reply to an empty `set=1`
    static let goSetOK = text(
        "errno=0\n",
        "\n")

    /// reply to `set=1` `listen_port=70000`
    static let goErrPort = text(
        "errno=-22\n",
        "\n")

    /// reply to `set=1` `nonsense` (no `=`)
    static let goErrNoEquals = text(
        "errno=-71\n",
        "\n")

    /// reply to `set=1` `allowed_ip=10.0.0.0/8` (a peer key before any public_key)
    static let goErrDeviceKey = text(
        "errno=-22\n",
        "\n")

    /// reply to `set=1` `public_key=P1` `protocol_version=2`
    static let goErrProtocolVersion = text(
        "errno=-22\n",
        "\n")

    /// reply to `get=1` followed by `x` instead of the blank line
    static let goErrGetTrailing = text(
        "errno=-22\n",
        "\n")

    /// reply to `set=1` `private_key=zz`
    static let goErrPrivateKey = text(
        "errno=-22\n",
        "\n")

}
