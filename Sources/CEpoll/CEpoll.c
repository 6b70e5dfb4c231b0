// The shim is header-only; this file gives the C target a translation unit.
#include "CEpoll.h"
