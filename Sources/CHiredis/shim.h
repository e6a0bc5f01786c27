#ifndef CACHESYNC_CHIREDIS_SHIM_H
#define CACHESYNC_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
