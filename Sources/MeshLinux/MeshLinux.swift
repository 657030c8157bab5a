// MeshLinux: Linux I/O adapters (TUN, UDP, clock). See docs/architecture.md.
