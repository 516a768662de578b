// The player's reports for replay analytics (docs/analytics.md): what was actually played
// (position ranges with their rate), seeks, pauses and the seconds the tab was visible, sent to
// POST /api/player/report every REPORT_MS and when the page is hidden or closed. The playlist
// path with its grant (`src`) is the credential; `viewer` comes from the page's ?viewer=, or
// an anonymous id kept in this browser. `extra` fields go into every report (the room's
// catch-up player sends `dvr: true`, catchup.js); the function returned stops the reporting
// with a last report (a player that goes away before the page does).
const REPORT_MS = 5000;
const JUMP = 1.5; // a position change this much beyond the elapsed time is a seek

function viewerId(params) {
  const given = params.get('viewer');
  if (given) return given;
  let anon = localStorage.getItem('mediaserver-viewer');
  if (!anon) {
    anon = `anon-${crypto.randomUUID().slice(0, 12)}`;
    localStorage.setItem('mediaserver-viewer', anon);
  }
  return anon;
}

export function startReporting(video, src, isLive, params, extra = {}) {
  window.__player ??= {};
  let stopped = false;
  const viewId = `v-${crypto.randomUUID()}`;
  const viewer = viewerId(params);
  let ranges = [];
  let seeks = [];
  let pauses = 0;
  let visibleMs = 0;
  let visibleSince = document.visibilityState === 'visible' ? performance.now() : null;
  let from = null; // where the range being played began
  let last = 0; // the last position seen while playing
  let lastAt = 0;
  let seekFrom = null;

  const close = (at) => {
    if (from !== null && at > from) ranges.push([from, at, video.playbackRate || 1]);
    from = null;
  };
  const open = () => {
    from = video.currentTime;
    last = from;
    lastAt = performance.now();
  };
  video.addEventListener('playing', () => { if (from === null) open(); });
  video.addEventListener('pause', () => { close(last); pauses += 1; });
  video.addEventListener('ended', () => close(video.currentTime));
  video.addEventListener('seeking', () => {
    if (seekFrom === null) seekFrom = last;
    close(last);
  });
  video.addEventListener('seeked', () => {
    if (seekFrom !== null) seeks.push([seekFrom, video.currentTime]);
    seekFrom = null;
    last = video.currentTime;
    if (!video.paused) open();
  });
  video.addEventListener('ratechange', () => { close(last); if (!video.paused) open(); });
  video.addEventListener('timeupdate', () => {
    const now = performance.now();
    const pos = video.currentTime;
    if (from !== null && !video.seeking) {
      const elapsed = ((now - lastAt) / 1000) * (video.playbackRate || 1);
      if (pos < last || pos - last > elapsed + JUMP) { // a jump without seeking events
        close(last);
        seeks.push([last, pos]);
        open();
      }
    }
    last = pos;
    lastAt = now;
  });
  document.addEventListener('visibilitychange', () => {
    const now = performance.now();
    if (document.visibilityState === 'visible') {
      visibleSince = now;
    } else {
      if (visibleSince !== null) visibleMs += now - visibleSince;
      visibleSince = null;
      report(false);
    }
  });
  window.addEventListener('pagehide', () => report(true));

  function report(final) {
    if (stopped) return;
    const now = performance.now();
    if (visibleSince !== null) { visibleMs += now - visibleSince; visibleSince = now; }
    const playing = from !== null;
    if (playing) { close(video.currentTime); }
    const body = {
      src: new URL(src, location.href).pathname, viewId, viewer, live: Boolean(isLive()),
      ranges, seeks, pauses, visible: visibleMs / 1000, rate: video.playbackRate || 1,
      position: video.currentTime, duration: Number.isFinite(video.duration) ? video.duration : 0,
      final, ...extra,
    };
    if (playing && !final) open();
    if (!final && !ranges.length && !seeks.length && !pauses) return;
    ranges = []; seeks = []; pauses = 0; visibleMs = 0;
    const text = JSON.stringify(body);
    window.__player.reports = (window.__player.reports || 0) + 1;
    if (final && navigator.sendBeacon) {
      navigator.sendBeacon('/api/player/report', text);
    } else {
      fetch('/api/player/report', { method: 'POST', body: text, keepalive: true,
        headers: { 'Content-Type': 'application/json' } }).catch(() => {});
    }
  }
  const timer = setInterval(() => report(false), REPORT_MS);
  window.__player.report = () => report(false);
  return () => { report(true); stopped = true; clearInterval(timer); };
}
