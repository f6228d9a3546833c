/*
 * lpubsub.c: conc.pubsub, the chapter's PubSub as a shared object.
 *
 * A subscriber's channel is receive-only (conc closes it on unsubscribe).
 * publish encodes {topic =, payload =} once; every subscriber receives a
 * copy sharing that encoding (see pubsub.c), decoded in its own state.
 */
#include "lconc.h"
#include "lcheck.h"

#define MAX_TOPICS 64

static conc_pubsub *checkps(lua_State *L) {
  return (conc_pubsub *)lconc_check_obj(L, 1, &conc_pubsub_type);
}

static int ps_new(lua_State *L) {
  conc_pubsub *ps = conc_pubsub_new();
  if (ps == NULL) return luaL_error(L, "conc.pubsub: not enough memory");
  lconc_push_obj(L, (conc_obj *)ps);
  return 1;
}

/* Reads argument idx, a topic or a list of topics, into names/lens;
 * returns how many. The strings stay on the stack (in the list). */
static size_t check_topics(lua_State *L, int idx, const char **names,
                           size_t *lens) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    names[0] = lua_tolstring(L, idx, &lens[0]);
    return 1;
  }
  lconc_argexpected(L, lua_istable(L, idx), idx, "topic or list of topics");
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  lconc_argcheck(L, n <= MAX_TOPICS, idx, "more than 64 topics");
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, idx, i) != LUA_TSTRING)
      luaL_error(L,
                 "conc.pubsub:subscribe: topic #%d is a %s, not a "
                 "string",
                 (int)i, luaL_typename(L, -1));
    names[i - 1] = lua_tolstring(L, -1, &lens[i - 1]);
    lua_pop(L, 1);  /* still referenced by the list */
  }
  return (size_t)n;
}

/* ps:subscribe(id, topics [, capacity = 100]) -> a receive-only channel */
static int ps_subscribe(lua_State *L) {
  conc_pubsub *ps = checkps(L);
  size_t idlen;
  const char *id = lconc_checklstring(L, 2, &idlen);
  const char *names[MAX_TOPICS];
  size_t lens[MAX_TOPICS];
  size_t n = check_topics(L, 3, names, lens);
  lua_Integer cap = lconc_optinteger(L, 4, 100);
  lconc_argcheck(L, cap >= 0 && cap <= 0x7fffffff, 4,
                 "capacity must be an integer from 0 to 2^31-1");
  conc_chan *ch;
  if (conc_pubsub_subscribe(ps, id, idlen, names, lens, n, (size_t)cap, &ch) !=
      CONC_OK)
    return luaL_error(L, "conc.pubsub:subscribe: not enough memory");
  lconc_push_obj(L, (conc_obj *)ch);
  return 1;
}

/* ps:unsubscribe(id) -> true if it was subscribed (its channel closed) */
static int ps_unsubscribe(lua_State *L) {
  conc_pubsub *ps = checkps(L);
  size_t len;
  const char *id = lconc_checklstring(L, 2, &len);
  lua_pushboolean(L, conc_pubsub_unsubscribe(ps, id, len));
  return 1;
}

/* ps:publish(topic, payload) -> how many subscribers received it */
static int ps_publish(lua_State *L) {
  conc_pubsub *ps = checkps(L);
  size_t len;
  const char *topic = lconc_checklstring(L, 2, &len);
  /* as ch:send: an explicit nil is a payload, a missing one a mistake */
  if (lua_isnone(L, 3))
    return luaL_error(L, "conc.pubsub:publish: payload expected");
  lua_settop(L, 3);
  lua_createtable(L, 0, 2);  /* Go's Message{Topic, Payload} */
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "topic");
  lua_pushvalue(L, 3);
  lua_setfield(L, -2, "payload");
  conc_msg m;
  lconc_encode(L, 4, 1, &m, "conc.pubsub:publish", LCONC_VALUE, 1);
  int n = conc_pubsub_publish(ps, topic, len, &m);
  conc_msg_free(&m);
  if (n < 0) return luaL_error(L, "conc.pubsub:publish: not enough memory");
  lua_pushinteger(L, n);
  return 1;
}

/* ps:dropped(id) -> messages id missed (its channel full), or nil if id
 * is not subscribed */
static int ps_dropped(lua_State *L) {
  conc_pubsub *ps = checkps(L);
  size_t len;
  const char *id = lconc_checklstring(L, 2, &len);
  int64_t n = conc_pubsub_dropped(ps, id, len);
  if (n < 0) lua_pushnil(L);
  else lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* #ps, ps:len(): subscribers now */
static int ps_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)conc_pubsub_count(checkps(L)));
  return 1;
}

void lconc_open_pubsub(lua_State *L) {
  static const luaL_Reg methods[] = {{"subscribe", ps_subscribe},
                                     {"unsubscribe", ps_unsubscribe},
                                     {"publish", ps_publish},
                                     {"dropped", ps_dropped},
                                     {"len", ps_len},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__len", ps_len}, {NULL, NULL}};
  lconc_declare(&conc_pubsub_type, methods, meta, NULL);
  lua_pushcfunction(L, ps_new);
  lua_setfield(L, -2, "pubsub");
}
