/*
 * lerrhint.c: the "created by" line of a worker's traceback and the
 * fresh-globals hint (see lerrhint.h).
 *
 * The capture runs on every spawn, so it does only what Lua's own
 * luaL_where does short of making a string: lua_getstack and
 * lua_getinfo("Sl") of one or two frames and a copy of the short source
 * name into the task (measured at ~30 ns a spawn here, against B4's 9-50
 * us for spawn+join; the message handler's closure adds one small
 * allocation a task). The text is made only when a worker fails.
 */
#include <string.h>
#include "lerrhint.h"
#include "worker.h"

/* How far up a spawn looks for a Lua frame: conc.go called through
 * pcall or another C function still names the Lua line that asked. */
enum { SITE_MAX_LEVEL = 4 };

void lconc_site_capture(lua_State *L, lconc_site *s) {
  lua_Debug ar;
  s->line = 0;
  s->by = lconc_current_id();
  for (int level = 1; level <= SITE_MAX_LEVEL; level++) {
    if (!lua_getstack(L, level, &ar)) return;
    if (!lua_getinfo(L, "Sl", &ar)) return;
    if (ar.currentline > 0) {
      memcpy(s->src, ar.short_src, sizeof s->src);
      s->src[sizeof s->src - 1] = '\0';
      s->line = ar.currentline;
      return;
    }
  }
}

void lconc_site_push(lua_State *L, const lconc_site *s) {
  if (s == NULL || s->line <= 0) {
    lua_pushliteral(L, "");
  } else if (s->by == 0) {
    lua_pushfstring(L, "created by conc.go in the main script at %s:%d", s->src,
                    s->line);
  } else {
    lua_pushfstring(L, "created by conc.go in worker %I at %s:%d",
                    (lua_Integer)s->by, s->src, s->line);
  }
}

/* The errors Lua raises for a nil global, up to the quote that opens
 * the name (ldebug.c's typeerror with varinfo "global"). */
static const char *const nil_global[] = {
    "attempt to call a nil value (global '",
    "attempt to index a nil value (global '",
    NULL,
};

static const char HINT[] =
    "; globals of the main script are not visible in workers, pass it as "
    "an argument or an upvalue";

/* Where the hint goes in msg (just after "(global 'name')" on its first
 * line), or NULL if msg is not a nil-global error. */
static const char *hint_point(const char *msg) {
  const char *eol = strchr(msg, '\n');
  for (int i = 0; nil_global[i]; i++) {
    const char *at = strstr(msg, nil_global[i]);
    if (at == NULL || (eol && at > eol)) continue;
    const char *close = strstr(at + strlen(nil_global[i]), "')");
    if (close && (eol == NULL || close < eol)) return close + 2;
  }
  return NULL;
}

void lconc_errhint_globals(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  const char *at = msg ? hint_point(msg) : NULL;
  if (at == NULL) return;
  lua_pushlstring(L, msg, (size_t)(at - msg));  /* msg, head */
  lua_pushstring(L, HINT);
  lua_pushstring(L, at);
  lua_concat(L, 3);                             /* msg, hinted */
  lua_replace(L, -2);
}

void lconc_errhint_traceback(lua_State *L, const lconc_site *site) {
  lconc_errhint_traceback_of(L, L, 1, site);
}

void lconc_errhint_traceback_of(lua_State *L, lua_State *co, int level,
                                const lconc_site *site) {
  lconc_errhint_globals(L);
  luaL_traceback(L, co, lua_tostring(L, -1), level);
  if (site == NULL || site->line <= 0) return;
  lua_pushliteral(L, "\n");
  lconc_site_push(L, site);
  lua_concat(L, 3);
}
