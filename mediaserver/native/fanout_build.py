"""cffi build of mediaserver.native._fanout (fanout.c): the per-copy send of the fan-out."""

from pathlib import Path

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef("""
typedef int (*ms_protect_fn)(void *session, void *packet, int *length);
typedef struct {
    int fd; int active; int count; long generation; long sent, errors, dropped; ...;
} ms_batch;
typedef struct {
    void *session; ms_protect_fn protect; unsigned char *buf;
    unsigned char addr[128]; unsigned int addrlen; long generation;
    int tcc_seq; double *hist_times; uint16_t *hist_sizes; int64_t *hist_head;
    unsigned int hist_mask; unsigned long long packets, bytes;
} ms_out;
typedef struct {
    unsigned char ext[64]; int ext_len, abs_pos, tcc_pos, level_pos; int x_bit; int tcc;
    unsigned long long packets, bytes;
} ms_copy;
#define MS_NOT_CONNECTED 0
#define MS_SRTP_ERROR -1
#define MS_TOO_LONG -2
#define MS_UNQUEUED -100
#define MS_MAX_PACKET 1500
#define MS_EXT_MAX 64
void ms_flush(ms_batch *b);
int ms_plain_protect(void *session, void *packet, int *length);
int ms_send(ms_batch *b, ms_out *o, ms_copy *c, const char *data, int data_len,
            int payload_off, const char *prefix, int prefix_len, unsigned int seq,
            unsigned int ts, unsigned int ssrc, int pt, const char *abs_time, int level,
            double now);
""")
ffibuilder.set_source("mediaserver.native._fanout",
                      (Path(__file__).parent / "fanout.c").read_text(),
                      extra_compile_args=["-O2", "-ffp-contract=off"])
