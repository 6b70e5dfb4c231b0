// A tiny shim over Debian's C zlib (zlib1g-dev).
// `deflateInit`/`inflateInit` are C macros that Swift cannot call; these inline
// functions expose them with the library's version and stream size filled in.
#ifndef SHOAL_CZLIB_H
#define SHOAL_CZLIB_H

#include <zlib.h>

/// deflateInit2 producing an RFC 1950 (zlib) stream at `level`.
static inline int shoal_deflate_init(z_streamp stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
}

/// inflateInit2 for raw deflate data: Shoal parses the RFC 1950 header and
/// trailer itself and skips the Adler-32 check, since every chunk is checked
/// against its SHA-256 anyway (Adler-32 cost 10 % of a downloader's CPU).
static inline int shoal_inflate_init(z_streamp stream) {
    return inflateInit2(stream, -MAX_WBITS);
}

#endif
