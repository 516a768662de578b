// Tells the server how each remote video is shown (setTrackView, docs/protocol.md): a tile
// scrolled out of sight, hidden, or in a background tab gets nothing sent until it shows
// again; its size in device pixels lets the server pick a simulcast layer no larger than the
// tile. Changes settle for SETTLE_MS and only what changed is sent.
const SETTLE_MS = 300;

export class TileViews {
  /**
   * request(method, params): a signalling request; session(): the current signalling
   * connection (a new one knows nothing of what the last was told, so all is sent again).
   */
  constructor(request, session, confirmed = {}) {
    this.request = request;
    this.session = session;
    this.confirmed = confirmed; // trackId -> visible, as the server last acknowledged it
    this.lastSession = null;
    this.watched = new Map(); // trackId -> {element, owner, intersecting, sent}
    this.timer = null;
    this.io = new IntersectionObserver((entries) => {
      for (const e of entries) {
        for (const w of this.watched.values()) if (w.element === e.target) w.intersecting = e.isIntersecting;
      }
      this.schedule();
    });
    this.ro = new ResizeObserver(() => this.schedule());
    this.onVisibility = () => this.schedule();
    document.addEventListener('visibilitychange', this.onVisibility);
  }

  /** The videos one participant's tracks play in now: [[trackId, element], ...]. */
  set(owner, pairs) {
    const wanted = new Map(pairs.filter(([, element]) => element));
    for (const [trackId, w] of [...this.watched]) {
      if (w.owner === owner && wanted.get(trackId) !== w.element) this.forget(trackId);
    }
    for (const [trackId, element] of wanted) {
      if (this.watched.has(trackId)) continue;
      this.watched.set(trackId, { element, owner, intersecting: true, sent: null });
      this.io.observe(element);
      this.ro.observe(element);
    }
    this.schedule();
  }

  forget(trackId) {
    const w = this.watched.get(trackId);
    if (!w) return;
    this.watched.delete(trackId);
    if (![...this.watched.values()].some((o) => o.element === w.element)) {
      this.io.unobserve(w.element);
      this.ro.unobserve(w.element);
    }
  }

  schedule() {
    if (this.timer) return;
    this.timer = setTimeout(() => { this.timer = null; this.flush(); }, SETTLE_MS);
  }

  flush() {
    const session = this.session();
    if (!session) return;
    if (session !== this.lastSession) {
      this.lastSession = session;
      for (const w of this.watched.values()) w.sent = null;
    }
    const dpr = window.devicePixelRatio || 1;
    for (const [trackId, w] of this.watched) {
      const el = w.element;
      const visible = !document.hidden && w.intersecting && el.isConnected &&
        el.offsetParent !== null && el.clientWidth > 0;
      const width = visible ? Math.round(el.clientWidth * dpr) : 0;
      const height = visible ? Math.round(el.clientHeight * dpr) : 0;
      const key = `${visible}:${width}:${height}`;
      if (key === w.sent) continue;
      w.sent = key;
      this.request('setTrackView', { trackId, visible, width, height })
        .then(() => { if (w.sent === key) this.confirmed[trackId] = visible; })
        .catch(() => { if (this.watched.get(trackId) === w) w.sent = null; }); // next change retries
    }
  }

  close() {
    clearTimeout(this.timer);
    this.io.disconnect();
    this.ro.disconnect();
    document.removeEventListener('visibilitychange', this.onVisibility);
  }
}
