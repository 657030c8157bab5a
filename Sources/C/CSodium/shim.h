/* CSodium: libsodium (Debian libsodium-dev). X25519, ChaCha20-Poly1305,
 * XChaCha20-Poly1305, Ed25519 and its conversion to X25519, random bytes. */
#include <sodium.h>
