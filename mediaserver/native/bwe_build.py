from pathlib import Path

from cffi import FFI

ffibuilder = FFI()
# What Python reads of the C structs (mediaserver/native/bwe.c has them whole): the
# estimator's figures, and for the tests what the Python reference keeps too.
ffibuilder.cdef("""
typedef struct { int64_t bytes; size_t len; ...; } ms_window;
typedef struct {
    double aimd_rate, capacity, capacity_var, loss_rate, loss;
    int aimd_state, has_capacity;
    ...;
} ms_rate;
typedef struct {
    int64_t reference, last_acked;
    double first_send, last_send, last_arrival;
    int state, num;
    double threshold, trend, accumulated, smoothed, prev_trend;
    int64_t estimate, received_rate, sent_rate, feedbacks, packets_lost, packets_acked;
    double rtt;
    ms_window received, sent;
    ms_rate rate;
    ...;
} ms_bwe;
void ms_bwe_init(ms_bwe *s, double initial_threshold, int64_t initial, int64_t min_rate,
                 int64_t max_rate, double increase_per_second);
void ms_bwe_free(ms_bwe *s);
void ms_bwe_raise_to(ms_bwe *s, double rate);
int ms_twcc_check(const char *fci, size_t len);
int ms_bwe_feedback(ms_bwe *s, const char *fci, size_t len, const double *times,
                    const uint16_t *sizes, const int64_t *head, unsigned mask, double now);
""")
# one source: the rate part first, then the feedback path that calls it
SOURCE = "".join((Path(__file__).parent / name).read_text() for name in ("bwe_rate.c", "bwe.c"))
ffibuilder.set_source("mediaserver.native._bwe", SOURCE,
                      extra_compile_args=["-O2", "-ffp-contract=off"])
