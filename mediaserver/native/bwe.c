/* One transport-cc feedback, from its FCI to the estimate, in one call.
 *
 * The C of mediaserver/rtp/twcc.py's parse_feedback (the status chunks and receive deltas)
 * and of SendSideEstimator._update (mediaserver/bwe/estimator.py, delay.py, rate.py): the
 * reference time unwrapped, the numbers matched to the SendHistory ring, the repeats skipped,
 * counts and sizes summed, arrival groups, the trendline fit and the overuse detector with its
 * adaptive threshold, the received and sent rate windows, the AIMD and the loss-based control.
 * The Python stays the reference: the same double operations in the same order (compiled with
 * -ffp-contract=off; Python's min(a, b) keeps a unless b < a, max unless b > a: py_min,
 * py_max), so the same bits (tests/test_bwe_native.py, tests/test_bwe_pinned.py).
 *
 * Every read of the FCI is bounds-checked; a malformed one gives the error the Python parser
 * raises (MS_TWCC_E_*) and changes nothing. History reads are `index & mask` into arrays of
 * mask + 1 entries. The rate windows' spans are malloc'd (ms_bwe_free releases them).
 *
 * Compiled after bwe_rate.c (the windows and the rate controls), as one source. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MS_TWCC_E_SHORT (-1)    /* "transport-cc FCI too short" */
#define MS_TWCC_E_CHUNKS (-2)   /* "transport-cc status chunks truncated" */
#define MS_TWCC_E_RESERVED (-3) /* "transport-cc reserved status symbol" */
#define MS_TWCC_E_DELTAS (-4)   /* "transport-cc receive deltas truncated" */
#define MS_TWCC_E_MEMORY (-5)

#define WINDOW 20 /* delay.py's constants, as there */
#define EXACT_EVERY 64
#define MAX_DELTAS 60
#define GROUP_SPAN 0.005
#define SMOOTHING 0.9
#define THRESHOLD_GAIN 4.0
#define MIN_THRESHOLD 6.0
#define MAX_THRESHOLD 600.0
#define MAX_ADAPT_OFFSET 15.0
#define K_UP 0.0087
#define K_DOWN 0.039
#define OVERUSE_TIME 0.010
#define MAX_ADAPT_STEP 0.1
#define REFERENCE_TICK_US 64000
#define DELTA_TICK_US 250
#define STACK_STATUSES 1024 /* statuses decoded on the stack; more (up to 65,535): malloc */
typedef struct {
    /* SendSideEstimator: last reference time unwrapped (64 ms units), highest seq reported */
    int64_t reference, last_acked; /* last_acked -1: none yet */
    int has_reference;
    /* ArrivalGroups: the group being filled and the last completed one */
    double first_send, last_send, last_arrival, prev_send, prev_arrival;
    int has_prev;
    /* TrendlineDetector */
    int state, num, overusing, overuse_count, has_first_arrival, has_last_adapt;
    int npoints, oldest; /* the window: a ring of WINDOW points from `oldest` */
    double threshold, trend, first_arrival, accumulated, smoothed, prev_trend;
    double time_overusing, last_adapt;
    int64_t count, n; /* the fit's updates and points, its sums relative to (bx, by) */
    double sx, sy, sxx, sxy, bx, by;
    double px[WINDOW], py[WINDOW];
    /* SendSideEstimator's figures */
    int64_t estimate, received_rate, sent_rate, feedbacks, packets_lost, packets_acked;
    double rtt;
    ms_window received, sent;
    ms_rate rate;
} ms_bwe;

void ms_bwe_init(ms_bwe *s, double initial_threshold, int64_t initial, int64_t min_rate,
                 int64_t max_rate, double increase_per_second)
{
    memset(s, 0, sizeof *s);
    s->last_acked = -1;
    s->first_send = -1.0;
    s->threshold = initial_threshold;
    s->estimate = initial;
    s->rtt = 0.1;
    s->received.newest = s->sent.newest = -INFINITY;
    rate_init(&s->rate, initial, min_rate, max_rate, increase_per_second);
}

void ms_bwe_free(ms_bwe *s)
{
    free(s->received.spans);
    free(s->sent.spans);
    s->received.spans = s->sent.spans = NULL;
    s->received.len = s->received.cap = s->sent.len = s->sent.cap = 0;
}

/* SendSideEstimator.raise_to after its test (Python's: it reads estimate and usage there) */
void ms_bwe_raise_to(ms_bwe *s, double rate)
{
    s->estimate = rate_raise_to(&s->rate, rate);
}

/* The status chunks of an FCI: symbols into `sym` (count of them; NULL: only checked) and
 * the receive deltas' offset; or a negative MS_TWCC_E_*. As parse_feedback: a reserved symbol
 * anywhere in a chunk (past the count too) is an error; bytes after the deltas are not. */
static int walk_chunks(const uint8_t *d, size_t len, uint8_t *sym, size_t *deltas_at)
{
    if (len < 8)
        return MS_TWCC_E_SHORT;
    unsigned count = (unsigned)d[2] << 8 | d[3], have = 0, need = 0;
    size_t pos = 8;
    while (have < count) {
        if (pos + 2 > len)
            return MS_TWCC_E_CHUNKS;
        unsigned chunk = (unsigned)d[pos] << 8 | d[pos + 1];
        pos += 2;
        if (!(chunk & 0x8000)) { /* run length */
            unsigned s = (chunk >> 13) & 3, run = chunk & 0x1FFF;
            if (s == 3)
                return MS_TWCC_E_RESERVED;
            if (run > count - have)
                run = count - have;
            if (sym)
                memset(sym + have, (int)s, run);
            need += s * run; /* one octet a small delta, two a large one */
            have += run;
        } else if (!(chunk & 0x4000)) { /* 14 one-bit symbols */
            for (int i = 0; i < 14 && have < count; i++) {
                unsigned s = (chunk >> (13 - i)) & 1;
                if (sym)
                    sym[have] = (uint8_t)s;
                need += s;
                have++;
            }
        } else { /* 7 two-bit symbols */
            for (int i = 0; i < 7; i++)
                if (((chunk >> (12 - 2 * i)) & 3) == 3)
                    return MS_TWCC_E_RESERVED;
            for (int i = 0; i < 7 && have < count; i++) {
                unsigned s = (chunk >> (12 - 2 * i)) & 3;
                if (sym)
                    sym[have] = (uint8_t)s;
                need += s;
                have++;
            }
        }
    }
    if (pos + need > len)
        return MS_TWCC_E_DELTAS;
    *deltas_at = pos;
    return 0;
}

int ms_twcc_check(const char *fci, size_t len)
{
    size_t at;
    return walk_chunks((const uint8_t *)fci, len, NULL, &at);
}

/* The delay-based part for one completed group (TrendlineDetector.update_many's body). */
static void detect(ms_bwe *s, double send_delta, double arrival_delta, double arrival)
{
    if (arrival_delta < 0)
        return; /* groups reordered on the way: no measurement */
    s->num = s->num < 1000 ? s->num + 1 : 1000;
    if (!s->has_first_arrival) {
        s->first_arrival = arrival;
        s->has_first_arrival = 1;
    }
    s->accumulated += (arrival_delta - send_delta) * 1000.0;
    s->smoothed = SMOOTHING * s->smoothed + (1.0 - SMOOTHING) * s->accumulated;
    double px = (arrival - s->first_arrival) * 1000.0;
    int evicted = s->npoints == WINDOW;
    double ex = 0.0, ey = 0.0;
    if (evicted) {
        ex = s->px[s->oldest];
        ey = s->py[s->oldest];
        s->px[s->oldest] = px;
        s->py[s->oldest] = s->smoothed;
        s->oldest = (s->oldest + 1) % WINDOW;
    } else {
        int at = (s->oldest + s->npoints) % WINDOW;
        s->px[at] = px;
        s->py[at] = s->smoothed;
        s->npoints++;
    }
    s->count++;
    if (s->count % EXACT_EVERY == 0 || s->n == 0) { /* the sums anew, relative to the first */
        s->bx = s->px[s->oldest];
        s->by = s->py[s->oldest];
        s->n = 0;
        s->sx = s->sy = s->sxx = s->sxy = 0.0;
        for (int k = 0; k < s->npoints; k++) {
            int i = (s->oldest + k) % WINDOW;
            double x = s->px[i] - s->bx, y = s->py[i] - s->by;
            s->n++;
            s->sx += x;
            s->sy += y;
            s->sxx += x * x;
            s->sxy += x * y;
        }
    } else { /* the new point in, then the evicted one out */
        double x = px - s->bx, y = s->smoothed - s->by;
        s->n++;
        s->sx += x;
        s->sy += y;
        s->sxx += x * x;
        s->sxy += x * y;
        if (evicted) {
            x = ex - s->bx;
            y = ey - s->by;
            s->n--;
            s->sx -= x;
            s->sy -= y;
            s->sxx -= x * x;
            s->sxy -= x * y;
        }
    }
    double trend = s->prev_trend;
    if (s->npoints == WINDOW) {
        double n = (double)s->n, den = n * s->sxx - s->sx * s->sx;
        if (den > 1e-9)
            trend = (n * s->sxy - s->sx * s->sy) / den;
    }
    if (s->num < 2)
        return;
    double modified = (double)(s->num < MAX_DELTAS ? s->num : MAX_DELTAS) * trend * THRESHOLD_GAIN;
    s->trend = modified;
    double threshold = s->threshold;
    if (modified > threshold) {
        if (s->overusing) {
            s->time_overusing += send_delta;
        } else {
            s->time_overusing = send_delta / 2.0; /* it began somewhere within this delta */
            s->overusing = 1;
        }
        s->overuse_count++;
        if (s->time_overusing > OVERUSE_TIME && s->overuse_count > 1 && trend >= s->prev_trend) {
            s->time_overusing = 0.0;
            s->overuse_count = 0;
            s->state = MS_OVERUSE;
        }
    } else {
        s->overusing = 0;
        s->overuse_count = 0;
        s->state = modified < -threshold ? MS_UNDERUSE : MS_NORMAL;
    }
    s->prev_trend = trend;
    /* the threshold follows the trend slowly; a sudden spike must not raise the bar */
    int had_last = s->has_last_adapt;
    double last = s->last_adapt;
    s->last_adapt = arrival;
    s->has_last_adapt = 1;
    double size = fabs(modified);
    if (!had_last || size > threshold + MAX_ADAPT_OFFSET)
        return;
    double dt = arrival - last;
    if (dt > MAX_ADAPT_STEP)
        dt = MAX_ADAPT_STEP;
    threshold += (size < threshold ? K_DOWN : K_UP) * (size - threshold) * (dt * 1000.0);
    if (threshold < MIN_THRESHOLD)
        threshold = MIN_THRESHOLD;
    else if (threshold > MAX_THRESHOLD)
        threshold = MAX_THRESHOLD;
    s->threshold = threshold;
}

/* One packet into the arrival groups (ArrivalGroups.add_each's body); a group it closes
 * that has a predecessor goes to the detector. */
static void group(ms_bwe *s, double send, double arrival)
{
    if (s->first_send < 0) {
        s->first_send = s->last_send = send;
        s->last_arrival = arrival;
        return;
    }
    if (send < s->first_send)
        return; /* sent before the current group began: reordered, no information */
    if (send - s->first_send <= GROUP_SPAN) {
        if (send > s->last_send)
            s->last_send = send;
        if (arrival > s->last_arrival)
            s->last_arrival = arrival;
        return;
    }
    if (s->has_prev)
        detect(s, s->last_send - s->prev_send, s->last_arrival - s->prev_arrival,
               s->last_arrival);
    s->prev_send = s->last_send;
    s->prev_arrival = s->last_arrival;
    s->has_prev = 1;
    s->first_send = s->last_send = send;
    s->last_arrival = arrival;
}

/* One feedback FCI against a SendHistory ring (times -1: no record; head: the last number
 * sent, -1: none) at `now`: 1 where it told of packets we know (the estimate and figures
 * updated), 0 where it did not (nothing changed then but the unwrapped reference time), or
 * MS_TWCC_E_* (malformed: nothing changed). */
int ms_bwe_feedback(ms_bwe *s, const char *fci, size_t len, const double *times,
                    const uint16_t *sizes, const int64_t *head, unsigned mask, double now)
{
    const uint8_t *d = (const uint8_t *)fci;
    uint8_t stack_sym[STACK_STATUSES];
    size_t at;
    if (len < 8)
        return MS_TWCC_E_SHORT;
    unsigned count = (unsigned)d[2] << 8 | d[3];
    uint8_t *sym = count <= STACK_STATUSES ? stack_sym : malloc(count);
    if (!sym)
        return MS_TWCC_E_MEMORY;
    int rc = walk_chunks(d, len, sym, &at);
    if (rc < 0)
        goto done;
    int64_t base = (int64_t)d[0] << 8 | d[1], ref = (int64_t)d[4] << 16 | d[5] << 8 | d[6];
    /* the reference time unwrapped: arrivals in us on the receiver's clock from at_us */
    if (s->has_reference) {
        int64_t last = s->reference;
        s->reference = last + (((ref - last + 0x800000) & 0xFFFFFF) - 0x800000);
    } else {
        s->reference = ref;
        s->has_reference = 1;
    }
    int64_t at_us = ref * REFERENCE_TICK_US + (s->reference - ref) * REFERENCE_TICK_US;
    /* the numbers still in the history: `first` .. `stop` - 1 of the feedback's (window) */
    int64_t last_sent = *head, behind = (last_sent - base) & 0xFFFF;
    int64_t first = behind > mask ? behind - mask : 0, stop = count;
    if (stop > (int64_t)mask + 1)
        stop = (int64_t)mask + 1;
    if (stop > behind + 1)
        stop = behind + 1;
    if (last_sent < 0 || first >= stop)
        first = stop = 0;
    /* receivers may report a number again: only those past the last one reported count */
    int64_t last = s->last_acked, ext_base, start = first;
    if (last < 0) {
        ext_base = base + 0x10000;
    } else {
        ext_base = last + ((base - last + 0x8000) & 0xFFFF) - 0x8000;
        if (last - ext_base + 1 > start)
            start = last - ext_base + 1;
    }
    rc = 0;
    if (start >= stop)
        goto done;
    int64_t highest = -1;
    for (int64_t k = start; k < stop; k++)
        if (times[(base + k) & mask] >= 0)
            highest = k;
    if (highest < 0)
        goto done; /* no send record for any (a history started anew) */
    s->last_acked = ext_base + highest;
    /* the deltas of the numbers before `start` are skipped */
    int64_t tick = 0;
    for (int64_t k = 0; k < start; k++) {
        if (sym[k] == 1)
            tick += d[at++];
        else if (sym[k] == 2) {
            tick += (int16_t)(d[at] << 8 | d[at + 1]);
            at += 2;
        }
    }
    int64_t lost = 0, total = 0, sent_bytes = 0, got_bytes = 0, first_tick = 0, max_tick = 0;
    double sent_min = 0.0, sent_max = 0.0, newest = 0.0;
    int got = 0;
    for (int64_t k = start; k <= highest; k++) {
        unsigned symbol = sym[k];
        if (symbol == 1)
            tick += d[at++];
        else if (symbol == 2) {
            tick += (int16_t)(d[at] << 8 | d[at + 1]);
            at += 2;
        }
        size_t i = (size_t)((base + k) & mask);
        double send = times[i];
        if (!(send >= 0))
            continue;
        unsigned size = sizes[i];
        if (!total || send < sent_min) /* as min() and max(): the first of equals kept */
            sent_min = send;
        if (!total || send > sent_max)
            sent_max = send;
        total++;
        sent_bytes += size;
        if (!symbol) {
            lost++;
            continue;
        }
        if (!got || send > newest)
            newest = send;
        got++;
        if (size) {
            if (!got_bytes)
                first_tick = max_tick = tick;
            else if (tick > max_tick)
                max_tick = tick;
            got_bytes += size;
        } else if (got_bytes && tick > max_tick) {
            max_tick = tick;
        }
        group(s, send, (double)(at_us + DELTA_TICK_US * tick) / 1e6);
    }
    /* the rest of SendSideEstimator._update: the rate windows, counts, rtt, rate controls */
    s->feedbacks++;
    rc = MS_TWCC_E_MEMORY;
    if (got_bytes) {
        int64_t bps = window_add(&s->received, (double)(at_us + DELTA_TICK_US * first_tick) / 1e6,
                                 (double)(at_us + DELTA_TICK_US * max_tick) / 1e6, got_bytes);
        if (bps < 0)
            goto done;
        if (bps)
            s->received_rate = bps;
    }
    int64_t bps = window_add(&s->sent, sent_min, sent_max, sent_bytes);
    if (bps < 0)
        goto done;
    if (bps)
        s->sent_rate = bps;
    s->packets_lost += lost;
    s->packets_acked += total - lost;
    if (got && now >= newest)
        s->rtt = RTT_SMOOTHING * s->rtt + (1 - RTT_SMOOTHING) * (now - newest);
    double received = s->received_rate ? (double)s->received_rate : -1.0; /* -1: None */
    int limited = (double)s->sent_rate < APP_LIMITED * s->rate.aimd_rate;
    double delay_rate = aimd_update(&s->rate, s->state, received, s->rtt, now, limited);
    double loss_rate = loss_update(&s->rate, lost, total, delay_rate, s->rtt, now, received);
    s->estimate = (int64_t)py_min(delay_rate, loss_rate);
    rc = 1;
done:
    if (sym != stack_sym)
        free(sym);
    return rc;
}
