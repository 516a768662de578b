from pathlib import Path

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef("int ms_probe(int x);")
ffibuilder.set_source("mediaserver.native._fanout", (Path(__file__).parent / "fanout.c").read_text(),
                      extra_compile_args=["-O2", "-ffp-contract=off"])
