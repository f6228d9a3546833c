/* calib.h: host.calib, a C module of the example host (calib.c). */
#ifndef HOST_CALIB_H
#define HOST_CALIB_H

#include <lua.h>

/* Opens host.calib: adjust(raw) -> calibrated value, calls() -> how many
 * adjust calls all states made together. */
int luaopen_host_calib(lua_State *L);

#endif
