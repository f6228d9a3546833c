#!/usr/bin/env python3
"""fuzz/gen_seeds.py: writes the seed corpora of the fuzz targets.

  fuzz/corpus/decode/     messages in the codec's format, written by hand
                          from the description at the top of
                          csrc/lua/codec.c (no API exposes encoded bytes)
  fuzz/corpus/roundtrip/  recipes for fuzz_roundtrip.c (see its header)

No seed contains the byte 8 (T_FUNC), which fuzz_decode rejects.
Run from anywhere: python3 fuzz/gen_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

(T_NIL, T_FALSE, T_TRUE, T_INT, T_FLOAT, T_STR, T_TABLE, T_REF, T_FUNC,
 T_MODULE, T_OBJ, T_ENV) = range(12)
F_BACKREFS, F_CODE = 1, 2


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def i64(v):
    zigzag = ((v << 1) ^ (v >> 63)) & (2**64 - 1)
    return bytes([T_INT]) + varint(zigzag)


def f64(v):
    return bytes([T_FLOAT]) + struct.pack('<d', v)


def s(text):
    if isinstance(text, str):
        text = text.encode()
    return bytes([T_STR]) + varint(len(text)) + text


def table(arr=(), hsh=()):
    out = bytes([T_TABLE]) + varint(len(arr)) + varint(len(hsh))
    for v in arr:
        out += v
    for k, v in hsh:
        out += k + v
    return out


def ref(i):
    return bytes([T_REF]) + varint(i)


def module(mod, key=None):
    out = bytes([T_MODULE]) + varint(len(mod)) + mod.encode()
    if key is None:
        return out + b'\x00'
    return out + b'\x01' + varint(len(key)) + key.encode()


def msg(flags, *values):
    return bytes([flags]) + b''.join(values)


def deep(n):
    v = bytes([T_TRUE])
    for _ in range(n):
        v = table([v])
    return v


DECODE = {
    'empty': b'',
    'flags_only': msg(0),
    'scalars': msg(0, bytes([T_NIL, T_FALSE, T_TRUE]), i64(42), i64(-1),
                   i64(2**63 - 1), f64(1.5), f64(-0.0), s('a\0b')),
    'floats': msg(0, f64(float('nan')), f64(float('inf')),
                  f64(float('-inf')), f64(5e-324), f64(1e308)),
    'string_long': msg(0, s(bytes(range(9, 9 + 100)))),
    'string_200': msg(0, s(b'x' * 200)),
    'array': msg(0, table([i64(1), i64(2), s('three'), bytes([T_NIL]),
                           i64(5)])),
    'hash': msg(0, table([], [(s('k'), bytes([T_TRUE])),
                              (i64(100), s('v')),
                              (f64(0.5), bytes([T_FALSE])),
                              (bytes([T_TRUE]), i64(3))])),
    'nested': msg(0, table([table([table([s('in')])])],
                           [(s('t'), table([], [(s('x'), i64(1))]))])),
    'cycle': msg(F_BACKREFS, table([], [(s('self'), ref(1))])),
    'shared': msg(F_BACKREFS, table([table([]), ref(2), ref(2)])),
    'table_key': msg(F_BACKREFS, table([table([])], [(ref(2), s('v'))])),
    'mutual': msg(F_BACKREFS, table([table([ref(1)])])),
    'two_values_refs': msg(F_BACKREFS, table([]), ref(1), ref(1)),
    'module': msg(F_CODE, module('string', 'format')),
    'module_table': msg(F_CODE, module('math'), module('table', 'concat')),
    'module_missing': msg(F_CODE, module('no.such.module')),
    'module_g_print': msg(F_CODE, module('_G', 'print')),
    'module_conc': msg(F_CODE, module('conc.core')),
    'env': msg(0, bytes([T_ENV])),
    'env_in_table': msg(F_BACKREFS, table([bytes([T_ENV])],
                                          [(s('g'), bytes([T_ENV]))])),
    'obj_without_refs': msg(0, bytes([T_OBJ]) + varint(0)),
    'bad_ref': msg(F_BACKREFS, ref(5)),
    'ref_no_flag': msg(0, table([ref(1)])),
    'nil_key': msg(0, table([], [(bytes([T_NIL]), i64(1))])),
    'nan_key': msg(0, table([], [(f64(float('nan')), i64(1))])),
    'truncated_int': msg(0, bytes([T_INT, 0x81, 0x82, 0x83])),
    'overlong_int': msg(0, bytes([T_INT]) + b'\xff' * 11),
    'truncated_table': msg(0, bytes([T_TABLE, 2, 0])),
    'huge_table_counts': msg(0, bytes([T_TABLE]) + b'\xff\xff\xff\x7f' * 2),
    'long_varint': msg(0, bytes([T_STR]) + b'\xff' * 12),
    'unknown_tag': msg(0, bytes([0x7f])),
    'deep_ok': msg(0, deep(150)),
    'deep_too_deep': msg(0, deep(230)),
    'many_values': msg(0, bytes([T_TRUE]) * 3000),
    'big_with_bad_tail': msg(0, s('y' * 60), bytes([0x55])),
    'heap_with_bad_tail': msg(0, s('y' * 200), bytes([0x55])),
    'heap_truncated': msg(0, s('z' * 120), bytes([T_INT, 0x81])),
}

# Recipes for fuzz_roundtrip: one opcode byte (taken modulo the number of
# opcodes), then its operands; see the OP_ list in fuzz_roundtrip.c.
OP = dict(NIL=0, FALSE=1, TRUE=2, INT=3, SMALLINT=4, FLOAT=5, SPECIAL=6,
          STR=7, LONGSTR=8, TABLE=9, OLDTABLE=10, SET=11, APPEND=12,
          MODULE=13, POP=14, DUP=15, BAD=16)


def r(*items):
    out = bytearray()
    for it in items:
        if isinstance(it, str):
            out.append(OP[it])
        elif isinstance(it, int):
            out.append(it & 0xff)
        else:
            out += it
    # No byte 8 is needed here, but keep the corpora uniform.
    return bytes(out)


ROUNDTRIP = {
    'scalars': r('NIL', 'TRUE', 'SMALLINT', 7, 'SPECIAL', 0),
    'int_float': r('INT', struct.pack('<q', -123456789012345),
                   'FLOAT', struct.pack('<d', 3.25)),
    'strings': r('STR', 5, b'ab\0cd', 'LONGSTR', 100, 0),
    'array': r('TABLE', 'SMALLINT', 1, 'APPEND', 0, 'STR', 1, b'x',
               'APPEND', 0),
    'hash': r('TABLE', 'STR', 1, b'k', 'TRUE', 'SET', 0,
              'SPECIAL', 4, 'FALSE', 'SET', 0),
    'cycle': r('TABLE', 'STR', 4, b'self', 'OLDTABLE', 0, 'SET', 0),
    'shared': r('TABLE', 'TABLE', 'APPEND', 0, 'OLDTABLE', 1, 'APPEND', 0,
                'POP'),
    'table_key': r('TABLE', 'TABLE', 'STR', 1, b'v', 'SET', 0, 'POP'),
    'nested': r('TABLE', 'TABLE', 'TABLE', 'APPEND', 1, 'APPEND', 0,
                'POP'),
    'module': r('TABLE', 'MODULE', 0, 'APPEND', 0, 'MODULE', 3),
    'env': r('MODULE', 2, 'TABLE', 'MODULE', 2, 'APPEND', 1),
    'bad': r('TABLE', 'BAD', 'APPEND', 0),
    'special_floats': r('SPECIAL', 0, 'SPECIAL', 1, 'SPECIAL', 2,
                        'SPECIAL', 3, 'SPECIAL', 4),
}


def write(kind, seeds):
    d = os.path.join(HERE, 'corpus', kind)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        if kind == 'decode':
            assert T_FUNC not in data, name
        with open(os.path.join(d, name), 'wb') as f:
            f.write(data)


write('decode', DECODE)
write('roundtrip', ROUNDTRIP)
print('wrote %d decode seeds, %d roundtrip seeds' % (len(DECODE),
                                                    len(ROUNDTRIP)))
