from pathlib import Path

from cffi import FFI

ffibuilder = FFI()
# What Python reads of the C structs (mediaserver/native/bwe.c has them whole): the
# detector's figures, and for the tests what the Python reference keeps too.
ffibuilder.cdef("""
typedef struct {
    int64_t reference, last_acked;
    double first_send, last_send, last_arrival;
    int state, num;
    double threshold, trend, accumulated, smoothed, prev_trend;
    ...;
} ms_bwe;
typedef struct {
    int64_t lost, total, sent_bytes, got_bytes;
    double sent_min, sent_max, recv_first, recv_last, newest_send;
    int got, usage;
} ms_bwe_out;
void ms_bwe_init(ms_bwe *s, double initial_threshold);
int ms_twcc_check(const char *fci, size_t len);
int ms_bwe_feedback(ms_bwe *s, const char *fci, size_t len, const double *times,
                    const uint16_t *sizes, const int64_t *head, unsigned mask, ms_bwe_out *out);
""")
ffibuilder.set_source("mediaserver.native._bwe", (Path(__file__).parent / "bwe.c").read_text(),
                      extra_compile_args=["-O2", "-ffp-contract=off"])
