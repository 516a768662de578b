"""cffi build of mediaserver.native._fanout (fanout.c): the fan-out's lane (ms_fan: the steady
case of each copy, numbering and VP8 temporal layers included) and its per-copy send."""

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
    int offset; int starting; int kept; uint32_t frame_ts; int top_in; int high_fwd;
    int out_pid, out_tl0; int target, current; long long frames_dropped;
    long long frames_by_tid[4]; int pid_offset, tl0_offset, last_pid, last_tl0;
    int top, segments; int seg_in[64], seg_off[64]; int frames[256];
} ms_temporal;
typedef struct {
    unsigned char ext[64]; int ext_len, abs_pos, tcc_pos, level_pos; int x_bit; int tcc;
    unsigned long long packets, bytes;
    ms_out *out; uint32_t ssrc; int pt; int started, paused; int layered; int spatial_layer;
    int seq_offset, start_seq, next_seq; uint32_t ts_offset, last_ts, last_in_ts;
    double last_time; ms_temporal *temporal;
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
int ms_fan(ms_batch *b, ms_copy *const *copies, int n, int start, const char *data,
           int data_len, int payload_off, unsigned int seq, uint32_t ts, int layer,
           const char *abs_time, int level, double now, int *unqueued);
""")
ffibuilder.set_source("mediaserver.native._fanout",
                      (Path(__file__).parent / "fanout.c").read_text(),
                      extra_compile_args=["-O2", "-ffp-contract=off"])
