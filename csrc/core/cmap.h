/*
 * cmap.h: conc_map, Go's sync.Map shared by reference between workers.
 *
 * Keys are byte strings with a kind byte, chosen by the caller (the Lua
 * binding puts the Lua type there): two keys are equal when their kinds
 * and bytes are. Values are messages (conc_msg), owned by the map while
 * stored; whatever a call returns in a conc_msg belongs to the caller.
 *
 * Return values: CONC_OK or a negative CONC_E* code; the calls that
 * answer a yes/no question (found, loaded, swapped, deleted) return 1 or
 * 0 for it, or a negative code (only CONC_ENOMEM).
 *
 * Every call is safe from any thread; none blocks for longer than
 * another call on the same shard holds its lock, and none calls back
 * into the caller.
 */
#ifndef CONC_CMAP_H
#define CONC_CMAP_H

#include "../conc.h"

typedef struct conc_map conc_map;
CONC_API extern const conc_type conc_map_type;

/* A key as the caller passes it: the map copies what it keeps. */
typedef struct conc_map_key {
  const void *data;
  size_t len;
  unsigned char kind;
} conc_map_key;

CONC_API conc_map *conc_map_new(void);            /* NULL: ENOMEM */

/* Copies the value of k into *out: 1 found (*out is the caller's), 0
 * absent (*out untouched), CONC_ENOMEM. */
CONC_API int conc_map_load(conc_map *m, const conc_map_key *k, conc_msg *out);
/* Sets k to *v. CONC_OK: *v belongs to the map; CONC_ENOMEM: *v is still
 * the caller's. A replaced value is freed after the shard is unlocked. */
CONC_API int conc_map_store(conc_map *m, const conc_map_key *k, conc_msg *v);
/* 1 loaded: *actual is a copy of the present value and *v is still the
 * caller's. 0 stored: *v belongs to the map, *actual untouched.
 * CONC_ENOMEM: nothing changed, *v is the caller's. */
CONC_API int conc_map_load_or_store(conc_map *m, const conc_map_key *k,
                                    conc_msg *v, conc_msg *actual);
/* Removes k. 1 deleted: the removed value moves to *out, or is freed if
 * out is NULL. 0 absent. Never fails. */
CONC_API int conc_map_load_and_delete(conc_map *m, const conc_map_key *k,
                                      conc_msg *out);
/* Sets k to *v (which belongs to the map on success). 1: k was present
 * and its previous value moved to *prev. 0: k was absent. CONC_ENOMEM:
 * nothing changed, *v is the caller's. */
CONC_API int conc_map_swap(conc_map *m, const conc_map_key *k, conc_msg *v,
                           conc_msg *prev);
/* Sets k to *new_v if k is present with a value equal to *old (same
 * bytes, same object references). 1 swapped: *new_v belongs to the map.
 * 0 not: *new_v is still the caller's. *old is only read. */
CONC_API int conc_map_compare_and_swap(conc_map *m, const conc_map_key *k,
                                       const conc_msg *old, conc_msg *new_v);
/* Removes k if its value equals *old: 1 deleted, 0 not. */
CONC_API int conc_map_compare_and_delete(conc_map *m, const conc_map_key *k,
                                         const conc_msg *old);
/* The number of entries. Exact when no write runs concurrently; with
 * concurrent writes, a count the map had at some moment during the call
 * for each shard (shards are counted one after another). */
CONC_API size_t conc_map_len(conc_map *m);
/* Removes every entry, atomically: no call sees a partly cleared map. */
CONC_API void conc_map_clear(conc_map *m);

/* ---- snapshots (range) -------------------------------------------------- */

/* One entry of a snapshot; key bytes point into the snapshot. */
typedef struct conc_map_item {
  conc_map_key key;
  conc_msg val;           /* a copy: the snapshot's until moved out */
} conc_map_item;

typedef struct conc_map_snap {
  size_t n;
  conc_map_item *items;
  unsigned char *keys;    /* every key's bytes, back to back */
} conc_map_snap;

/*
 * Copies every entry into *out, atomically (the map as it was at one
 * moment, with no write half done). The copy belongs to the caller and
 * shares nothing with the map: no lock is held once this returns.
 * CONC_OK, or CONC_ENOMEM (*out is then empty). A value may be moved out
 * of an item by copying the struct and setting the item's val to an
 * empty message (len 0, nrefs 0).
 */
CONC_API int conc_map_snapshot(conc_map *m, conc_map_snap *out);
/* Frees the keys and every value still in the snapshot; leaves it empty
 * (so calling it twice is harmless). */
CONC_API void conc_map_snap_free(conc_map_snap *s);

#endif
