// Linux's epoll, for shoal-bench's plain-socket load clients: Swift's Glibc
// module does not export <sys/epoll.h>.
#ifndef C_EPOLL_H
#define C_EPOLL_H

#include <sys/epoll.h>

#endif
