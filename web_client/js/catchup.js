// Catching up inside the room (docs/protocol.md, "Catching up"): while the stage is recorded
// with live HLS, "Watch from the start" swaps the stage for that HLS (hls.js, or Safari's own)
// at its beginning, with a scrubber marked with the chapters so far and speeds up to 2x;
// "Back to live", or reaching the live edge while playing faster than 1x, swaps the live
// WebRTC stage back. Meanwhile the stage's tiles are hidden, so their view reports
// (tileviews.js) stop the stage video at the server, and their sound is muted here; the side
// panel (chat, Q&A, polls, hands) goes on as it is. Playback is reported to the replay
// analytics as DVR viewing (playstats.js, `dvr: true`). Hosts see how many are rewound.
import { showError } from './status.js';
import { startReporting } from './playstats.js';

const SPEEDS = [1, 1.25, 1.5, 2];
const LIVE_EDGE_S = 3; // this close to the newest media while playing faster: live again
const HLS_JS = '/static/vendor/hls.min.js';
const MARKS_MS = 10000; // the chapter marks noted meanwhile are asked for this often

let hlsLoading = null;
function loadHls() {
  hlsLoading ??= new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = HLS_JS;
    s.onload = () => resolve(window.Hls);
    s.onerror = () => { hlsLoading = null; reject(new Error('could not load the HLS player')); };
    document.head.append(s);
  });
  return hlsLoading;
}

function el(tag, props = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

export class CatchUpControl {
  constructor() {
    this.m = null;
    this.recording = false;
    this.session = null; // {hls, video, stopReports, marks} while rewound
    // For automated tests: what the catch-up did.
    window.__catchup = { rewound: false, toLive: [], errors: [], chapters: [], count: null };
    this.button = el('button', { type: 'button', id: 'catchup-btn', hidden: true,
      textContent: '⟲ Watch from the start' });
    this.button.addEventListener('click', () => this.rewind());
    document.getElementById('panel-btn').before(this.button);
    this.badge = el('span', { id: 'rewound-badge', className: 'rec-badge', hidden: true });
    document.getElementById('room-flags').append(this.badge);
    this.panel = this.buildPanel();
    document.querySelector('.tiles-wrap').after(this.panel);
  }

  buildPanel() {
    this.video = null;
    this.scrub = el('input', { type: 'range', min: 0, max: 0, step: 0.1, value: 0,
      className: 'catchup-scrub', ariaLabel: 'Position' });
    this.scrub.addEventListener('input', () => { if (this.video) this.video.currentTime = Number(this.scrub.value); });
    this.ticks = el('div', { className: 'catchup-ticks' });
    this.speed = el('select', { id: 'catchup-speed', ariaLabel: 'Speed' },
      ...SPEEDS.map((r) => el('option', { value: String(r), textContent: `${r}x` })));
    this.speed.addEventListener('change', () => { if (this.video) this.video.playbackRate = Number(this.speed.value); });
    this.position = el('span', { className: 'catchup-position' });
    const live = el('button', { type: 'button', id: 'catchup-live-btn', className: 'primary',
      textContent: 'Back to live' });
    live.addEventListener('click', () => this.backToLive('button'));
    this.screen = el('div', { className: 'catchup-screen' });
    return el('div', { id: 'catchup', className: 'catchup', hidden: true }, this.screen,
      el('div', { className: 'catchup-track' }, this.scrub, this.ticks),
      el('div', { className: 'catchup-bar' }, this.position, this.speed, live));
  }

  attach(m, res) {
    if (this.session) { // joined again (the long way): the stage is live again
      this.close();
      m.request('catchUp', { rewound: false }).catch(() => {});
    }
    this.m = m;
    // only a composite recording has live HLS, and only the stage's audience may watch it
    // (backstage: not yet); the server refuses otherwise, the button is not offered
    this.recording = Boolean(res.recording) && res.recordingMode !== 'pertrack';
    this.live = res.live ?? true;
    this.showCount(res.rewound ?? 0);
    this.render();
    m.on('recordingChanged', (d) => {
      this.recording = Boolean(d.recording) && d.mode !== 'pertrack';
      if (!this.recording && this.session) this.backToLive('recording stopped');
      this.render();
    });
    m.on('liveChanged', (d) => { this.live = Boolean(d.live); this.render(); });
    m.on('rewoundChanged', (d) => this.showCount(d.count));
  }

  /** Hosts: how many people watch the stage rewound now. */
  showCount(count) {
    window.__catchup.count = count;
    this.badge.hidden = !count;
    this.badge.textContent = `⟲ ${count} rewound`;
  }

  render() {
    const backstage = !this.live && this.m?.self?.role === 'attendee' && !this.m?.self?.onStage;
    this.button.hidden = !this.recording || backstage || Boolean(this.session) || !this.m?.self;
  }

  async rewind() {
    if (this.session) return;
    this.button.disabled = true;
    try {
      const grant = await this.m.request('catchUp', { rewound: true });
      window.__catchup.playlist = grant.playlist;
      const video = el('video', { playsInline: true, autoplay: true });
      this.session = { video, hls: null, stopReports: null, marks: grant.marks, toLive: false };
      this.video = video;
      this.screen.replaceChildren(video);
      this.video.playbackRate = Number(this.speed.value);
      this.hideStage(true);
      await this.play(grant.playlist);
      window.__catchup.rewound = true;
      const session = this.session;
      session.marksTimer = setInterval(() => { // asking again while rewound: the marks so far
        this.m.request('catchUp', { rewound: true })
          .then((g) => { session.marks = g.marks; }).catch(() => {});
      }, MARKS_MS);
    } catch (err) {
      window.__catchup.errors.push(String(err.message || err));
      showError(err, 'Could not rewind the stage');
      if (this.session) this.backToLive('error');
    } finally {
      this.button.disabled = false;
      this.render();
    }
  }

  async play(src) {
    const { video } = this.session;
    const session = this.session;
    session.stopReports = startReporting(video, src, () => true,
      new URLSearchParams({ viewer: this.m.selfId }), { dvr: true });
    video.addEventListener('ratechange', () => { this.speed.value = String(video.playbackRate); });
    video.addEventListener('timeupdate', () => this.onTime(session));
    const Hls = await loadHls().catch(() => null);
    if (this.session !== session) return;
    if (Hls && Hls.isSupported()) {
      // The whole event stays seekable; start at its beginning, not at the live edge.
      const hls = new Hls({ liveDurationInfinity: true, backBufferLength: Infinity, startPosition: 0 });
      session.hls = hls;
      hls.on(Hls.Events.LEVEL_LOADED, (_, data) => this.placeMarks(session, data.details));
      hls.on(Hls.Events.ERROR, (_, data) => {
        if (!data.fatal) return;
        window.__catchup.errors.push(data.details);
        this.backToLive('error');
      });
      hls.loadSource(src);
      hls.attachMedia(video);
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = src; // Safari: native HLS (no chapter marks: no fragment dates here)
      video.addEventListener('loadedmetadata', () => { video.currentTime = 0; }, { once: true });
    } else {
      throw new Error('This browser cannot play HLS.');
    }
    video.play().catch(() => {});
  }

  /** Chapter marks (wall-clock) onto the playlist's timeline, by its program dates. */
  placeMarks(session, details) {
    const first = details.fragments[0];
    if (!first || !first.programDateTime) return;
    const end = details.fragments.at(-1).start + details.fragments.at(-1).duration;
    const marks = session.marks
      .map((m) => ({ ...m, start: first.start + m.at - first.programDateTime / 1000 }))
      .filter((m) => m.start >= 0 && m.start <= end);
    window.__catchup.chapters = marks.map(({ start, title }) => ({ start, title }));
    this.scrub.max = String(end);
    this.ticks.replaceChildren(...marks.map((m) => {
      const tick = el('button', { type: 'button', className: 'catchup-tick', title: m.title,
        ariaLabel: `Chapter: ${m.title}` }); // a title comes from people: text only
      tick.style.left = `${(100 * m.start) / end}%`;
      tick.addEventListener('click', () => { session.video.currentTime = m.start; });
      return tick;
    }));
  }

  onTime(session) {
    const { video, hls } = session;
    if (this.session !== session || !video.seekable.length) return;
    const t = video.currentTime;
    const end = video.seekable.end(video.seekable.length - 1);
    this.scrub.max = String(Math.max(Number(this.scrub.max), end));
    this.scrub.value = String(t);
    this.position.textContent = `${Math.max(0, end - t).toFixed(0)} s behind live`;
    const sync = hls?.liveSyncPosition;
    if ((video.playbackRate > 1 && end - t < LIVE_EDGE_S) || (sync != null && t > 1 && t >= sync)) {
      this.backToLive('live edge');
    }
  }

  /** The live WebRTC stage again, at once: the player goes, the tiles and their sound come back. */
  backToLive(why) {
    if (!this.session) return;
    window.__catchup.toLive.push(why);
    this.close();
    this.m?.request('catchUp', { rewound: false }).catch(() => {}); // the session may be gone
  }

  close() {
    const session = this.session;
    this.session = null;
    this.video = null;
    clearInterval(session.marksTimer);
    session.stopReports?.();
    session.hls?.destroy();
    session.video.removeAttribute('src');
    session.video.load();
    this.screen.replaceChildren();
    this.hideStage(false);
    window.__catchup.rewound = false;
    this.render();
  }

  /** Rewound: the tiles hidden (their views stop the video at the server) and silent. */
  hideStage(rewound) {
    const wrap = document.querySelector('.tiles-wrap');
    wrap.hidden = rewound;
    this.panel.hidden = !rewound;
    this.observer?.disconnect();
    const silence = (video) => {
      if (rewound && !video.muted) { video.muted = true; video.dataset.catchupMuted = '1'; }
      if (!rewound && video.dataset.catchupMuted) { video.muted = false; delete video.dataset.catchupMuted; }
    };
    wrap.querySelectorAll('video').forEach(silence);
    if (rewound) { // a tile that comes while rewound is silent too
      this.observer = new MutationObserver(() => wrap.querySelectorAll('video').forEach(silence));
      this.observer.observe(wrap, { childList: true, subtree: true });
    }
  }
}
