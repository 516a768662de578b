// Plays a recording's HLS playlist: live with DVR (seek back, jump to live) while the event
// runs, VOD afterwards. hls.js comes from the npm registry at setup (web_client/vendor/).
// The page is opened as /play?src=<playlist URL with its grant>[&chapters=<chapters.vtt URL>];
// with chapters, the browser's own WebVTT parser reads them (a hidden chapters <track>) and the
// page lists them: a click seeks there.

import { startReporting } from './playstats.js';

const video = document.getElementById('video');
const statusLine = document.getElementById('player-status');
const liveState = document.getElementById('live-state');
const position = document.getElementById('position');
const params = new URLSearchParams(location.search);
const src = params.get('src');
const chaptersSrc = params.get('chapters');

// For automated tests: what the player did.
window.__player = { errors: [], live: false, ready: false, chapters: [] };
if (src) startReporting(video, src, () => window.__player.live, params); // playstats.js

function fail(message) {
  window.__player.errors.push(message);
  statusLine.textContent = message;
}

function liveEdge() {
  const end = video.seekable.length ? video.seekable.end(video.seekable.length - 1) : 0;
  return hls && hls.liveSyncPosition != null ? hls.liveSyncPosition : end;
}

let hls = null;
if (!src) {
  fail('No recording given (open this page with ?src=<playlist link>).');
} else if (window.Hls && window.Hls.isSupported()) {
  // A DVR window: keep the whole event seekable; start at the live edge for a live event.
  hls = new window.Hls({ liveDurationInfinity: true, backBufferLength: Infinity });
  hls.on(window.Hls.Events.MANIFEST_PARSED, () => { window.__player.ready = true; video.play(); });
  hls.on(window.Hls.Events.LEVEL_LOADED, (_, data) => {
    window.__player.live = data.details.live;
    liveState.dataset.live = String(data.details.live);
    liveState.textContent = data.details.live ? '● LIVE' : 'Recording';
  });
  hls.on(window.Hls.Events.ERROR, (_, data) => {
    if (data.fatal) fail(`Playback error: ${data.details}`);
  });
  hls.loadSource(src);
  hls.attachMedia(video);
} else if (video.canPlayType('application/vnd.apple.mpegurl')) {
  video.src = src; // Safari plays HLS natively
} else {
  fail('This browser cannot play HLS.');
}

document.getElementById('back-btn').addEventListener('click', () => {
  video.currentTime = Math.max(video.seekable.length ? video.seekable.start(0) : 0,
    video.currentTime - 10);
});
document.getElementById('live-btn').addEventListener('click', () => {
  video.currentTime = liveEdge();
  video.play();
});
video.addEventListener('error', () => fail(`Media error ${video.error?.code ?? ''}`));
video.addEventListener('timeupdate', () => {
  position.textContent = `${video.currentTime.toFixed(1)} s`;
});
window.__player.back = () => document.getElementById('back-btn').click();
window.__player.toLive = () => document.getElementById('live-btn').click();

function clock(seconds) {
  const s = Math.floor(seconds);
  const hms = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60];
  return (hms[0] ? `${hms[0]}:` : '') + hms.slice(1).map((n) => String(n).padStart(2, '0')).join(':');
}

function showChapters(track) {
  const list = document.getElementById('chapters');
  const cues = Array.from(track.cues || []);
  window.__player.chapters = cues.map((c) => ({ start: c.startTime, end: c.endTime, title: c.text }));
  list.replaceChildren(...cues.map((cue, i) => {
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.index = String(i);
    const at = document.createElement('time');
    at.textContent = clock(cue.startTime);
    const name = document.createElement('span');
    name.textContent = cue.text; // titles come from people: text, never HTML
    button.append(at, name);
    button.addEventListener('click', () => { video.currentTime = cue.startTime; video.play(); });
    item.append(button);
    return item;
  }));
  list.hidden = cues.length === 0;
  track.addEventListener('cuechange', () => {
    const now = track.activeCues && track.activeCues[0];
    for (const b of list.querySelectorAll('button')) {
      b.setAttribute('aria-current', String(now != null && cues[b.dataset.index] === now));
    }
  });
}

if (chaptersSrc) {
  const element = document.createElement('track');
  element.kind = 'chapters';
  element.src = chaptersSrc;
  element.addEventListener('load', () => showChapters(element.track));
  element.addEventListener('error', () => fail('Could not load the chapters.'));
  video.append(element);
  element.track.mode = 'hidden'; // loaded and parsed, not shown over the picture
}
window.__player.seekChapter = (i) => document.querySelector(`#chapters [data-index="${i}"]`).click();
