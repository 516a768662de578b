/* The rate part of one transport-cc feedback (mediaserver/native/bwe.c, which is compiled
 * after this file, as one source: mediaserver/native/bwe_build.py): the rate windows, and the
 * AIMD and loss-based control with their state, as mediaserver/bwe/rate.py and RateWindow in
 * estimator.py do it, the same double operations in the same order (see bwe.c). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* estimator.py's and rate.py's constants, as there */
#define RECEIVED_WINDOW 0.5
#define RTT_SMOOTHING 0.9
#define APP_LIMITED 0.5
#define BETA 0.85
#define MIN_INCREASE 1000.0
#define PACKET_BITS 9600.0
#define FRAME_RATE 30.0
#define MAX_RATE_OVER_RECEIVED 1.5
#define RATE_MARGIN 10000.0
#define LOSS_DECREASE 0.10
#define LOSS_INCREASE 0.02
#define LOSS_WINDOW 1.0
#define LOSS_MIN_PACKETS 20
#define LOSS_DECREASE_INTERVAL 0.3
#define MS_NORMAL 0 /* the detector's usage, as delay.py's */
#define MS_OVERUSE 1
#define MS_UNDERUSE 2
#define MS_HOLD 0 /* AimdRateControl's states */
#define MS_INCREASE 1
#define MS_DECREASE 2

typedef struct {
    double first, last;
    int64_t bytes;
} ms_span;

typedef struct { /* RateWindow: spans in a ring that grows (no span may be dropped early) */
    ms_span *spans;
    size_t head, len, cap;
    int64_t bytes;
    double newest;
} ms_window;

typedef struct { /* AimdRateControl with its LinkCapacity (kbit/s), LossBasedControl */
    double aimd_rate, min_rate, max_rate, increase_per_second, capacity, capacity_var;
    double aimd_last_change, aimd_last_decrease;
    int aimd_state, has_capacity, has_last_change, has_last_decrease;
    double loss_rate, loss, loss_window_start, loss_last_decrease;
    int64_t loss_lost, loss_total;
    int loss_follow, has_window_start, has_loss_decrease;
} ms_rate;

static double py_min(double a, double b) { return b < a ? b : a; }
static double py_max(double a, double b) { return b > a ? b : a; }

static void rate_init(ms_rate *r, int64_t initial, int64_t min_rate, int64_t max_rate,
                      double increase_per_second)
{
    r->aimd_rate = r->loss_rate = (double)initial;
    r->min_rate = (double)min_rate;
    r->max_rate = (double)max_rate;
    r->increase_per_second = increase_per_second;
    r->capacity_var = 0.4;
    r->loss_follow = 1;
}

/* RateWindow.add: bit/s over the window, 0 while it spans under 0.1 s; -1: no memory. */
static int64_t window_add(ms_window *w, double first, double last, int64_t size)
{
    if (!size)
        return 0;
    if (w->len == w->cap) { /* grow, the ring's spans in order from 0 */
        size_t cap = w->cap ? 2 * w->cap : 16;
        ms_span *spans = malloc(cap * sizeof *spans);
        if (!spans)
            return -1;
        for (size_t k = 0; k < w->len; k++)
            spans[k] = w->spans[(w->head + k) % w->cap];
        free(w->spans);
        w->spans = spans;
        w->head = 0;
        w->cap = cap;
    }
    ms_span *in = &w->spans[(w->head + w->len++) % w->cap];
    in->first = first;
    in->last = last;
    in->bytes = size;
    w->bytes += size;
    w->newest = py_max(last, w->newest);
    while (w->len > 1 && w->spans[w->head].last < w->newest - RECEIVED_WINDOW) {
        w->bytes -= w->spans[w->head].bytes;
        w->head = (w->head + 1) % w->cap;
        w->len--;
    }
    double span = w->newest - w->spans[w->head].first;
    return span >= 0.1 ? (int64_t)((double)(w->bytes * 8) / span) : 0;
}

/* LinkCapacity */
static double capacity_deviation(const ms_rate *r)
{
    return sqrt(r->capacity_var * (r->has_capacity ? r->capacity : 0.0));
}

static void capacity_on_overuse(ms_rate *r, double received)
{
    double sample = received / 1000;
    r->capacity = r->has_capacity ? 0.95 * r->capacity + 0.05 * sample : sample;
    r->has_capacity = 1;
    double error = r->capacity - sample;
    r->capacity_var = 0.95 * r->capacity_var + 0.05 * error * error / py_max(r->capacity, 1.0);
    r->capacity_var = py_min(py_max(r->capacity_var, 0.4), 2.5);
}

/* AimdRateControl.update; received < 0: None */
static double aimd_update(ms_rate *r, int usage, double received, double rtt, double now,
                          int app_limited)
{
    if (usage == MS_OVERUSE) {
        r->aimd_state = MS_DECREASE;
    } else if (usage == MS_UNDERUSE) {
        r->aimd_state = MS_HOLD;
    } else if (r->aimd_state == MS_HOLD) {
        r->aimd_state = MS_INCREASE;
        r->aimd_last_change = now;
        r->has_last_change = 1;
    }
    if (r->aimd_state == MS_INCREASE) {
        if (received >= 0 && r->has_capacity &&
            received > (r->capacity + 3 * capacity_deviation(r)) * 1000)
            r->has_capacity = 0; /* the link carries more now than when it last filled up */
        double dt = r->has_last_change ? py_min(now - r->aimd_last_change, 1.0) : 0.0, step;
        if (r->has_capacity) { /* about one packet per response time */
            double frame_bits = r->aimd_rate / FRAME_RATE;
            double packet_bits = frame_bits / ceil(frame_bits / PACKET_BITS);
            step = py_max(MIN_INCREASE, packet_bits / (rtt + 0.1) * dt);
        } else {
            /* Python's float ** float is C's pow() but for these two cases */
            double grow = dt == 0.0 || r->increase_per_second == 1.0
                              ? 1.0 : pow(r->increase_per_second, dt);
            step = py_max(MIN_INCREASE, r->aimd_rate * (grow - 1.0));
        }
        double new = r->aimd_rate + step;
        if (received >= 0) {
            double limit = MAX_RATE_OVER_RECEIVED * received + RATE_MARGIN;
            if (new > limit)
                new = py_max(r->aimd_rate, limit);
        }
        r->aimd_rate = new;
        r->aimd_last_change = now;
        r->has_last_change = 1;
    } else if (r->aimd_state == MS_DECREASE && received >= 0 &&
               (!r->has_last_decrease || /* at most once a round trip, unless far too high */
                now - r->aimd_last_decrease >= py_min(py_max(rtt, 0.01), 0.2) ||
                received < 0.5 * r->aimd_rate)) {
        double got = app_limited ? r->aimd_rate : received, new = BETA * got;
        if (new > r->aimd_rate && r->has_capacity)
            new = BETA * r->capacity * 1000;
        if (new < r->aimd_rate)
            r->aimd_rate = new;
        if (r->has_capacity &&
            got < py_max(0.0, r->capacity - 3 * capacity_deviation(r)) * 1000)
            r->has_capacity = 0; /* far below the old capacity: the path changed */
        capacity_on_overuse(r, got);
        r->aimd_state = MS_HOLD;
        r->aimd_last_change = r->aimd_last_decrease = now;
        r->has_last_change = r->has_last_decrease = 1;
    }
    r->aimd_rate = py_min(py_max(r->aimd_rate, r->min_rate), r->max_rate);
    return r->aimd_rate;
}

/* LossBasedControl.update; received < 0: None */
static double loss_update(ms_rate *r, int64_t lost, int64_t total, double delay_rate, double rtt,
                          double now, double received)
{
    if (!r->has_window_start) {
        r->loss_window_start = now;
        r->has_window_start = 1;
    }
    r->loss_lost += lost;
    r->loss_total += total;
    if (r->loss_total >= LOSS_MIN_PACKETS && now - r->loss_window_start >= LOSS_WINDOW) {
        r->loss = (double)r->loss_lost / (double)r->loss_total;
        r->loss_lost = r->loss_total = 0;
        r->loss_window_start = now;
        r->loss_follow = r->loss < LOSS_INCREASE;
        int may = !r->has_loss_decrease ||
                  now - r->loss_last_decrease >= LOSS_DECREASE_INTERVAL + rtt;
        if (r->loss > LOSS_DECREASE && may) {
            /* what got through in the window is carried */
            r->loss_rate = py_max(r->loss_rate * (1.0 - 0.5 * r->loss),
                                  BETA * (received >= 0 ? received : 0.0));
            r->loss_last_decrease = now;
            r->has_loss_decrease = 1;
        }
    }
    r->loss_rate = r->loss_follow ? delay_rate : py_min(r->loss_rate, delay_rate);
    r->loss_rate = py_min(py_max(r->loss_rate, r->min_rate), r->max_rate);
    return r->loss_rate;
}

/* SendSideEstimator.raise_to past its test: both controls from `rate`; the new estimate */
static int64_t rate_raise_to(ms_rate *r, double rate)
{
    r->aimd_rate = py_min(py_max(r->aimd_rate, rate), r->max_rate);
    r->loss_rate = py_min(py_max(r->loss_rate, rate), r->max_rate);
    return (int64_t)py_min(r->aimd_rate, r->loss_rate);
}
