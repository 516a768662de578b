/* The fan-out in C: each copy of a forwarded RTP packet, from the consumer's state to the
 * sendmmsg batch.
 *
 * ms_fan is the lane: for one incoming packet and the Producer's array of consumers' ms_copy
 * structs it does per copy what consumer.Renumbering.forward, simulcast.LayerSwitch.forward
 * and rtp/vp8.py TemporalFilter.admit do in the steady case (renumbering, VP8 temporal
 * decisions and descriptor rewrite), from state those Python classes keep in the same structs;
 * any other case returns to Python for that consumer, untouched (see ms_fan). ms_send is what
 * Consumer._send did in Python per subscriber (docs/benchmarks.md, "Where the time goes"): lay
 * out the header and the subscriber's header-extension block, copy the payload into the
 * transport's SRTP buffer, protect it there, count it, record it for transport-cc and queue a
 * message that points at the buffer.
 *
 * Memory: every pointer here (SRTP session and buffer, SendHistory arrays, a copy's ms_out and
 * ms_temporal) belongs to a Python object that the owner of the struct keeps alive
 * (mediaserver/sendbatch.py, consumer.py, rtp/vp8.py); the Producer's array of ms_copy
 * pointers is kept with the tuple of the consumers that own them (producer.py). */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define MS_CAPACITY 1024 /* Linux's UIO_MAXIOV: the most one sendmmsg takes */
#define MS_MAX_PACKET 1500
#define MS_EXT_MAX 64

typedef int (*ms_protect_fn)(void *session, void *packet, int *length);

typedef struct {
    int fd;           /* the worker's UDP socket; -1: none (the caller sends) */
    int active;       /* a fan-out is under way: flush when it ends, not per packet */
    int count;        /* messages queued */
    long generation;  /* flushes so far */
    long sent, errors, dropped;
    struct mmsghdr msgs[MS_CAPACITY];
    struct iovec iovs[MS_CAPACITY];
} ms_batch;

typedef struct {
    /* SRTP: libsrtp's session and srtp_protect (pylibsrtp's copy of libsrtp) */
    void *session;
    ms_protect_fn protect;
    unsigned char *buf; /* MS_MAX_PACKET + trailer: where packets are built and protected */
    /* where it goes; addrlen 0: nowhere the batch can send (TCP, or not known yet) */
    unsigned char addr[128]; /* a struct sockaddr_in or sockaddr_in6 */
    unsigned int addrlen;
    long generation; /* batch generation its buffer is queued in; -1: none */
    /* transport-cc: the transport-wide sequence number last given, and its SendHistory */
    int tcc_seq;
    double *hist_times;
    uint16_t *hist_sizes;
    int64_t *hist_head;
    unsigned int hist_mask;
    unsigned long long packets, bytes;
} ms_out;

/* rtp/vp8.py TemporalFilter's state, which its Python reads and writes here. */
#define MS_MAX_TID 3
#define MS_SEGMENTS 64
#define MS_FRAMES 256
#define MS_DROPPED 0xFFFF
typedef struct {
    int offset;        /* the sequence offset of the newest segment */
    int starting;      /* the next packet starts the output (a keyframe) */
    int kept;          /* the frame of frame_ts is forwarded */
    uint32_t frame_ts; /* the timestamp of the frame decided last */
    int top_in;        /* the input seq where the newest segment starts (seg_in[top]) */
    int high_fwd;      /* the newest input seq forwarded */
    int out_pid, out_tl0; /* the frame's output PictureID and TL0PICIDX */
    int target, current;  /* the highest TID wanted, and forwarded now (-1: none yet) */
    long long frames_dropped;
    long long frames_by_tid[MS_MAX_TID + 1];
    int pid_offset, tl0_offset, last_pid, last_tl0;
    int top, segments;    /* the newest segment, how many there are */
    int seg_in[MS_SEGMENTS], seg_off[MS_SEGMENTS]; /* input seq where each starts, offset */
    int frames[MS_FRAMES]; /* PictureID << 16 | its output PictureID (or MS_DROPPED); -1 */
} ms_temporal;

typedef struct {
    unsigned char ext[MS_EXT_MAX]; /* the subscriber's extension block, patched per packet */
    int ext_len, abs_pos, tcc_pos, level_pos;
    int x_bit;   /* 0x10 when there is a block */
    int tcc;     /* transport-cc negotiated: number and record each packet */
    unsigned long long packets, bytes;
    /* consumer.Renumbering's numbering, read and written by Python as the C's */
    ms_out *out;        /* its transport's end of the fan-out; NULL: not in the lane */
    uint32_t ssrc;
    int pt;
    int started, paused;
    int layered;        /* simulcast.LayerSwitch: only packets of spatial_layer go on here */
    int spatial_layer;
    int seq_offset, start_seq, next_seq;
    uint32_t ts_offset, last_ts, last_in_ts;
    double last_time;
    ms_temporal *temporal; /* VP8 temporal layers; NULL: every packet, one offset */
} ms_copy;

#define MS_NOT_CONNECTED 0
#define MS_SRTP_ERROR -1
#define MS_TOO_LONG -2
#define MS_UNQUEUED -100 /* protected, not queued: -(length) + MS_UNQUEUED */

void ms_flush(ms_batch *b)
{
    int n = b->count, start = 0;
    if (!n)
        return;
    b->count = 0;
    b->generation++;
    while (start < n) {
        int done = sendmmsg(b->fd, b->msgs + start, (unsigned int)(n - start), 0);
        if (done > 0) {
            start += done;
            b->sent += done;
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
            b->dropped += n - start; /* the socket buffer is full: UDP, the rest is lost */
            return;
        }
        b->errors++; /* e.g. an ICMP error reported late: this message is lost */
        start++;
    }
}

static inline void put16(unsigned char *p, unsigned int v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static inline void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Build one copy in o's buffer, protect it, count and record it, and queue it (sent now when
 * no fan-out is under way). `data` is the publisher's packet (its first two octets give the P
 * and M bits), the payload is data[payload_off:], `prefix` goes before it (a rewritten VP8
 * descriptor, an RTX original sequence number). Returns the protected length once queued,
 * MS_UNQUEUED - length when protected but left for the caller to send, or an MS_ error. */
int ms_send(ms_batch *b, ms_out *o, ms_copy *c, const char *data, int data_len,
            int payload_off, const char *prefix, int prefix_len, unsigned int seq,
            unsigned int ts, unsigned int ssrc, int pt, const char *abs_time, int level,
            double now)
{
    unsigned char *p = o->buf;
    int pos, end, length;
    if (o->session == NULL)
        return MS_NOT_CONNECTED;
    if (payload_off < 2 || payload_off > data_len || prefix_len < 0)
        return MS_TOO_LONG;
    pos = 12 + c->ext_len;
    end = pos + prefix_len + (data_len - payload_off);
    if (end > MS_MAX_PACKET)
        return MS_TOO_LONG;
    if (o->generation == b->generation && b->count)
        ms_flush(b); /* its buffer still holds a packet queued in this batch */
    p[0] = (unsigned char)(0x80 | (data[0] & 0x20) | c->x_bit);
    p[1] = (unsigned char)((data[1] & 0x80) | (pt & 0x7F));
    put16(p + 2, seq & 0xFFFF);
    put32(p + 4, ts);
    put32(p + 8, ssrc);
    if (c->ext_len) {
        /* Values come from the publisher's packets; one missing leaves the last in place (as
         * ExtensionWriter.render did). */
        unsigned char *t = c->ext;
        if (c->abs_pos >= 0 && abs_time != NULL)
            memcpy(t + c->abs_pos, abs_time, 3);
        if (c->tcc_pos >= 0)
            put16(t + c->tcc_pos, c->tcc ? (unsigned int)((o->tcc_seq + 1) & 0xFFFF) : 0);
        if (c->level_pos >= 0 && level >= 0)
            t[c->level_pos] = (unsigned char)level;
        memcpy(p + 12, t, (size_t)c->ext_len);
    }
    if (prefix_len)
        memcpy(p + pos, prefix, (size_t)prefix_len);
    memcpy(p + pos + prefix_len, data + payload_off, (size_t)(data_len - payload_off));
    length = end;
    if (o->protect(o->session, p, &length))
        return MS_SRTP_ERROR;
    c->packets++;
    c->bytes += (unsigned long long)length;
    o->packets++;
    o->bytes += (unsigned long long)length;
    if (c->tcc) { /* what the subscriber's transport-cc feedback will tell about */
        unsigned int tcc = (unsigned int)((o->tcc_seq + 1) & 0xFFFF), i;
        o->tcc_seq = (int)tcc;
        if (o->hist_times != NULL) {
            i = tcc & o->hist_mask;
            o->hist_times[i] = now;
            o->hist_sizes[i] = (uint16_t)(length < 0xFFFF ? length : 0xFFFF);
            *o->hist_head = tcc;
        }
    }
    if (b->fd < 0 || o->addrlen == 0)
        return MS_UNQUEUED - length;
    if (b->count == MS_CAPACITY)
        ms_flush(b);
    {
        int k = b->count++;
        struct iovec *iov = &b->iovs[k];
        struct msghdr *h = &b->msgs[k].msg_hdr;
        iov->iov_base = p;
        iov->iov_len = (size_t)length;
        h->msg_name = o->addr;
        h->msg_namelen = o->addrlen;
        h->msg_iov = iov;
        h->msg_iovlen = 1;
        h->msg_control = NULL;
        h->msg_controllen = 0;
        h->msg_flags = 0;
    }
    o->generation = b->generation;
    if (!b->active)
        ms_flush(b);
    return length;
}

/* "Protection" that leaves the packet as it is: for tests that read back what is sent. */
int ms_plain_protect(void *session, void *packet, int *length)
{
    (void)session;
    (void)packet;
    (void)length;
    return 0;
}

/* The fields of a VP8 payload descriptor (RFC 7741 4.2) the steady case needs, read as
 * rtp/vp8.py Descriptor.read does: tid -1 where there is none (or the payload is too short). */
typedef struct {
    int size, tid, sync, key, wide, picture_id, pid_pos, tl0, tl0_pos;
} ms_vp8;

static void vp8_read(const unsigned char *p, int n, ms_vp8 *d)
{
    int pos = 1, ext;
    d->picture_id = d->tl0 = d->tid = -1;
    d->pid_pos = d->tl0_pos = d->wide = d->sync = d->key = 0;
    d->size = -1;
    if (n < 1)
        return;
    if (p[0] & 0x80) {
        if (n < 2)
            return;
        ext = p[1];
        pos = 2;
        if (ext & 0x80) {
            if (pos >= n)
                return;
            d->pid_pos = pos;
            if (p[pos] & 0x80) {
                if (pos + 1 >= n)
                    return;
                d->picture_id = (p[pos] & 0x7F) << 8 | p[pos + 1];
                d->wide = 1;
                pos += 2;
            } else {
                d->picture_id = p[pos];
                pos += 1;
            }
        }
        if (ext & 0x40) {
            if (pos >= n)
                return;
            d->tl0 = p[pos];
            d->tl0_pos = pos++;
        }
        if (ext & 0x30) {
            if (pos >= n)
                return;
            if (ext & 0x20) {
                d->tid = p[pos] >> 6;
                d->sync = (p[pos] & 0x20) != 0;
            }
            pos++;
        }
    }
    d->key = (p[0] & 0x17) == 0x10 && pos < n && (p[pos] & 0x01) == 0;
    d->size = pos;
}

/* TemporalFilter._keep */
static void vp8_keep(ms_temporal *t, const ms_vp8 *d)
{
    if (d->picture_id >= 0) {
        int out = (d->picture_id + t->pid_offset) & (d->wide ? 0x7FFF : 0x7F);
        t->out_pid = t->last_pid = out;
        t->frames[d->picture_id & (MS_FRAMES - 1)] = d->picture_id << 16 | out;
    }
    if (d->tl0 >= 0)
        t->out_tl0 = t->last_tl0 = (d->tl0 + t->tl0_offset) & 0xFF;
}

/* TemporalFilter._decide: the first packet of a newer frame decides whether it is kept */
static void vp8_decide(ms_temporal *t, uint32_t ts, const ms_vp8 *d)
{
    int tid = d->tid, current = t->current, target = t->target, kept;
    t->frame_ts = ts;
    t->frames_by_tid[tid]++;
    if (d->key || current > target)
        current = target;
    kept = tid <= current;
    if (!kept && tid == current + 1 && tid <= target && d->sync) {
        current = tid; /* up one layer at its sync frame */
        kept = 1;
    }
    t->current = current;
    t->kept = kept;
    if (kept) {
        vp8_keep(t, d);
    } else {
        t->frames_dropped++;
        if (d->picture_id >= 0) {
            t->pid_offset = (t->pid_offset - 1) & 0x7FFF;
            t->frames[d->picture_id & (MS_FRAMES - 1)] = d->picture_id << 16 | MS_DROPPED;
        }
    }
}

/* TemporalFilter._dropped: a dropped packet newer than every forwarded one moves the output
 * numbering after it down by one */
static void vp8_dropped(ms_temporal *t, unsigned int seq)
{
    int top = t->top;
    int after = (int)((seq + 1) & 0xFFFF);
    if (((seq - (unsigned int)t->high_fwd) & 0xFFFF) >= 0x8000)
        return;
    t->offset = (t->offset - 1) & 0xFFFF;
    if (((t->high_fwd - t->top_in) & 0xFFFF) < 0x8000) { /* forwarded since */
        top = t->top = (top + 1) % MS_SEGMENTS;
        if (t->segments < MS_SEGMENTS)
            t->segments++;
        t->seg_in[top] = t->top_in = after;
    } else if (((after - t->top_in) & 0xFFFF) < 0x8000) {
        t->seg_in[top] = t->top_in = after;
    }
    t->seg_off[top] = t->offset;
}

/* The fan-out of one incoming packet to `copies[start:n]`, each in its steady state as
 * consumer.Renumbering.forward (and LayerSwitch.forward, TemporalFilter.admit) would forward
 * it: started, on the arriving encoding, in its sequence window, and with temporal layers a
 * packet without a TID, or of the frame decided last or a newer one (decided here: kept, or
 * dropped), from the newest segment. A paused copy is passed over, as forward does. Returns the index of the first copy the caller must
 * forward itself (a NULL entry, or any other case: nothing of it was touched), or n when all
 * are done; *unqueued > 0 when instead that copy was sent as far as its transport's buffer
 * (`unqueued` octets, protected) and the caller sends it (TCP, no socket: ms_send). */
int ms_fan(ms_batch *b, ms_copy *const *copies, int n, int start, const char *data,
           int data_len, int payload_off, unsigned int seq, uint32_t ts, int layer,
           const char *abs_time, int level, double now, int *unqueued)
{
    ms_vp8 d = {-1, -1, 0, 0, 0, -1, 0, -1, 0};
    unsigned char desc[8];
    int read = 0, i;
    *unqueued = 0;
    for (i = start; i < n; i++) {
        ms_copy *c = copies[i];
        ms_temporal *t;
        const char *prefix = NULL;
        int prefix_len = 0, off = payload_off, offset, length;
        unsigned int out_seq;
        uint32_t out_ts;
        if (c == NULL)
            return i;
        if (c->paused)
            continue;
        if (!c->started || (c->layered && layer != c->spatial_layer) ||
            ((seq - (unsigned int)c->start_seq) & 0xFFFF) >= 0x8000)
            return i;
        t = c->temporal;
        if (t == NULL) {
            offset = c->seq_offset;
        } else {
            if (!read) {
                vp8_read((const unsigned char *)data + payload_off, data_len - payload_off, &d);
                read = 1;
            }
            if (d.tid >= 0) {
                /* the first frame after a start, one of an earlier frame, or a packet from
                 * before the last drop come late: Python's */
                if (t->starting || (ts - t->frame_ts) >= 0x80000000u ||
                    ((seq - (unsigned int)t->top_in) & 0xFFFF) >= 0x8000)
                    return i;
                if (ts != t->frame_ts)
                    vp8_decide(t, ts, &d);
                if (!t->kept) {
                    vp8_dropped(t, seq);
                    c->seq_offset = t->offset;
                    continue;
                }
                if (((seq - (unsigned int)t->high_fwd) & 0xFFFF) < 0x8000)
                    t->high_fwd = (int)seq;
                /* the descriptor with the frame's output PictureID and TL0PICIDX (Rewriter:
                 * the same octets when they are the publisher's) */
                memcpy(desc, data + payload_off, (size_t)d.size);
                if (d.pid_pos) {
                    if (d.wide) {
                        desc[d.pid_pos] = (unsigned char)(0x80 | t->out_pid >> 8);
                        desc[d.pid_pos + 1] = (unsigned char)t->out_pid;
                    } else {
                        desc[d.pid_pos] = (unsigned char)(t->out_pid & 0x7F);
                    }
                }
                if (d.tl0_pos)
                    desc[d.tl0_pos] = (unsigned char)t->out_tl0;
                prefix = (const char *)desc;
                prefix_len = d.size;
                off = payload_off + d.size;
            }
            offset = c->seq_offset = t->offset;
        }
        out_seq = (seq + (unsigned int)offset) & 0xFFFF;
        out_ts = ts + c->ts_offset;
        if (((out_seq - (unsigned int)c->next_seq) & 0xFFFF) < 0x8000) {
            c->next_seq = (int)((out_seq + 1) & 0xFFFF);
            c->last_ts = out_ts;
            c->last_in_ts = ts;
            c->last_time = now;
        }
        length = ms_send(b, c->out, c, data, data_len, off, prefix, prefix_len, out_seq, out_ts,
                         c->ssrc, c->pt, abs_time, level, now);
        if (length <= MS_UNQUEUED) {
            *unqueued = MS_UNQUEUED - length;
            return i;
        }
    }
    return n;
}
