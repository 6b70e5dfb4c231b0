// Small system calls Swift cannot reach directly (variadic C functions).
#ifndef SHOAL_CSYSTEM_H
#define SHOAL_CSYSTEM_H

#include <signal.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

/// Asks the kernel to send SIGTERM to this process when its parent dies, so
/// servers started by a test run or a script never outlive it. Returns 0 on
/// success, -1 where unsupported.
static inline int shoal_exit_with_parent(void) {
#if defined(__linux__)
    return prctl(PR_SET_PDEATHSIG, SIGTERM);
#else
    return -1;
#endif
}

#endif
