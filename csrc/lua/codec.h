/*
 * codec.h: the codec's wire format, shared by codec.c (every value) and
 * lmsg.c (the single values a host builds without a lua_State). See
 * codec.c for what each tag carries.
 */
#ifndef LCONC_CODEC_H
#define LCONC_CODEC_H

/* A value's tag byte. */
enum {
  T_NIL,
  T_FALSE,
  T_TRUE,
  T_INT,
  T_FLOAT,
  T_STR,
  T_TABLE,
  T_REF,
  T_FUNC,
  T_MODULE,
  T_OBJ,
  T_ENV,
  T_UPVAL,
  T_CLASS,
  T_EXPORT
};
/* The message's first byte. */
enum { F_BACKREFS = 1, F_CODE = 2, F_PRELOAD = 4 };

#endif
