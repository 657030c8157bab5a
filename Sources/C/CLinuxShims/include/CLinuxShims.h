/* CLinuxShims: Linux facilities Swift cannot import directly (function-like
 * macros, ioctl request numbers). Prefixed mg_. */
#ifndef CLINUXSHIMS_H
#define CLINUXSHIMS_H
#endif
